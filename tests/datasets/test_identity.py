"""Identity of inputs (issue 17): ids keep their annotation type, and splits sharing items
are reported."""
import json
import re
from types import SimpleNamespace

import pytest

from mmvpeft.datasets import AnnotationError
from mmvpeft.datasets.grounding import MomentRetrievalDataset
from mmvpeft.datasets.identity import IdTypes, check_split_overlap, split_overlap
from mmvpeft.datasets.qa import VideoQADataset
from mmvpeft.datasets.retrieval import VideoTextRetrievalDataset
from mmvpeft.engine.hooks import DataChecksHook


def _moment(qid, vid='v0', query='a dog runs'):
    return dict(qid=qid, vid=vid, query=query, duration=10.0, relevant_windows=[[1.0, 3.0]])


def _jsonl(path, records):
    path.write_text(''.join(json.dumps(r) + '\n' for r in records))
    return str(path)


def test_int_and_str_qid_in_one_moment_file_names_both_lines(tmp_path):
    ann = _jsonl(tmp_path / 'train.jsonl', [_moment(7), _moment(8), _moment('7')])
    with pytest.raises(AnnotationError) as exc:
        MomentRetrievalDataset(ann_file=ann)
    msg = str(exc.value)
    assert msg.startswith(f'{ann}:3: qid \'7\' (str) and qid 7 (int) at {ann}:1 ')
    assert 'qid7.npz' in msg
    # The same type twice is still the plain duplicate error.
    ann = _jsonl(tmp_path / 'dup.jsonl', [_moment(7), _moment(7)])
    with pytest.raises(AnnotationError, match=re.escape(f'{ann}:2: duplicate qid, first on '
                                                        'line 1')):
        MomentRetrievalDataset(ann_file=ann)
    # Distinct texts of either type load, and keep their types.
    ann = _jsonl(tmp_path / 'ok.jsonl', [_moment(7), _moment('8')])
    ds = MomentRetrievalDataset(ann_file=ann)
    assert [ds.get_data_info(i)['qid'] for i in range(2)] == [7, '8']


def test_int_and_str_qid_in_a_qa_json_list_names_both_entries(tmp_path):
    ann = tmp_path / 'train_qa.json'
    ann.write_text(json.dumps([dict(qid='3', vid='a', question='who?', answer='man'),
                               dict(qid=3, vid='b', question='what?', answer='dog')]))
    with pytest.raises(AnnotationError, match=re.escape(
            f"{ann}[1]: qid 3 (int) and qid '3' (str) at {ann}[0]")):
        VideoQADataset(ann_file=str(ann), video_dir='.', check_files=False)


def test_int_and_str_vid_in_a_retrieval_file_names_both_lines(tmp_path):
    ann = _jsonl(tmp_path / 'ann.jsonl', [dict(vid=5, captions=['a cat']),
                                          dict(vid='5', captions=['a dog'])])
    with pytest.raises(AnnotationError, match=re.escape(
            f"{ann}:2: vid '5' (str) and vid 5 (int) at {ann}:1")):
        VideoTextRetrievalDataset(ann_file=ann, video_dir='.', check_files=False)


def test_id_types_directly():
    ids = IdTypes('f.jsonl')
    ids.check(1, 'f.jsonl:1')
    ids.check('2', 'f.jsonl:2')
    ids.check(1, 'f.jsonl:3')  # an exact duplicate is the dataset's own check
    with pytest.raises(AnnotationError, match="f.jsonl:4: qid '1'.*f.jsonl:1"):
        ids.check('1', 'f.jsonl:4')


def test_split_overlap_counts_typed_qids_and_vid_text_pairs(tmp_path):
    train = MomentRetrievalDataset(ann_file=_jsonl(tmp_path / 'train.jsonl', [
        _moment(1, 'v1', 'a dog runs'), _moment(2, 'v2', 'a cat sits'),
        _moment(3, 'v3', 'x'), _moment(4, 'v4', 'y')]))
    val = MomentRetrievalDataset(ann_file=_jsonl(tmp_path / 'val.jsonl', [
        _moment(1, 'v9', 'z'),                 # same qid
        _moment('2', 'v8', 'w'),               # "2" is not 2
        _moment(10, 'v2', 'A  cat sits'),      # same video and text (case, spaces)
        _moment(11, 'v4', 'another query')]))  # same video, other text: not shared
    found = split_overlap(train, val)
    assert found['qids'] == [('int', 1)]
    assert found['pairs'] == [('v2', 'a cat sits')]
    with pytest.warns(UserWarning) as rec:
        msg = check_split_overlap(train, val, 'val')
    assert len(rec) == 1 and str(rec[0].message) == msg
    assert '1 qid(s) (e.g. 1)' in msg and "1 (vid, text) pair(s) (e.g. 'v2': 'a cat sits')" in msg
    assert 'train.jsonl' in msg and 'val.jsonl' in msg
    assert check_split_overlap(train, train.__class__(ann_file=_jsonl(
        tmp_path / 'other.jsonl', [_moment(99, 'v99', 'q')]))) is None

    # The hook compares the training set with the built validation set, in the run's log.
    runner = SimpleNamespace(train_dataloader=SimpleNamespace(dataset=train),
                             _val_loop=SimpleNamespace(dataloader=SimpleNamespace(dataset=val)))
    assert DataChecksHook().before_train(runner) == msg
    runner._val_loop = dict(type='ValLoop')  # not built: nothing to compare
    assert DataChecksHook().before_train(runner) is None
