"""MSRVTT-QA layout, answer vocabulary, the synthetic QA set and the QA pipeline."""
import json
import os.path as osp

import numpy as np
import pytest
from mmengine.registry import init_default_scope

from mmvpeft.datasets import AnnotationError
from mmvpeft.datasets.qa import (SYNTHETIC_ANSWERS, AnswerVocab, MSRVTTQADataset,
                                 SyntheticQADataset, VideoQADataset, build_answer_vocab)
from mmvpeft.datasets.synthetic import write_video

TRAIN = [  # answers: man x3 ("Man." normalises to man), cook x2 and dog x2 (a tie), red x1
    dict(question='who is singing?', answer='man', video_id=0, id=0, category_id=1),
    dict(question='who plays?', answer='Man.', video_id='video0', id=1),
    dict(question='what runs?', answer='dog', video_id=1, id=2),
    dict(question='what barks?', answer='dog', video_id='1', id=3),
    dict(question='what does he do?', answer='cook', video_id=0, id=4),
    dict(question='what does she do?', answer='cook', video_id=1, id=5),
    dict(question='what color is it?', answer='red', video_id=1, id=6),
    dict(question='who talks?', answer='man', video_id=0, id=7),
]
TEST = [dict(question='who is there?', answer='man', video_id=2, id=100),
        dict(question='what is he riding?', answer='unicycle', video_id=2, id=101),
        dict(question='how does he sing?', answer='loud', video_id=2, id=102)]


def write_layout(root, train=TRAIN, test=TEST, videos=(0, 1, 2)):
    (root / 'videos').mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for n in videos:
        frames = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(4)]
        write_video(str(root / 'videos' / f'video{n}.mp4'), frames, 4.0, (32, 32))
    (root / 'train_qa.json').write_text(json.dumps(train))
    (root / 'test_qa.json').write_text(json.dumps(test))
    return root


VOCAB = dict(source='train_qa.json', top_k=3, file='vocab.json')


def test_vocab_top_k_ties_broken_by_answer_and_saved(tmp_path):
    root = write_layout(tmp_path)
    vocab = build_answer_vocab(**VOCAB, data_root=str(root))
    assert vocab.answers == ['man', 'cook', 'dog'] and vocab.counts == [3, 2, 2]
    assert vocab.index('MAN') == 0 and vocab.index('red') == -1
    saved = json.loads((root / 'vocab.json').read_text())
    assert saved['answers'] == vocab.answers and saved['top_k'] == 3
    # Loaded, not rebuilt: the same ids, also from another process's point of view.
    assert build_answer_vocab(**VOCAB, data_root=str(root)).digest == vocab.digest
    with pytest.raises(ValueError, match=r'vocab.json was built with top_k=3.*asks for 5'):
        build_answer_vocab(**dict(VOCAB, top_k=5), data_root=str(root))
    (root / 'train_qa.json').write_text(json.dumps(TRAIN[:4]))
    with pytest.raises(ValueError, match='built from another version of .*train_qa.json'):
        build_answer_vocab(**VOCAB, data_root=str(root))
    with pytest.raises(FileNotFoundError, match='nope.json'):
        build_answer_vocab(source='nope.json', data_root=str(root))
    assert AnswerVocab(['b', 'a']).digest != AnswerVocab(['a', 'b']).digest


def test_msrvtt_qa_items_oov_dropped_in_training_kept_in_test(tmp_path):
    root = write_layout(tmp_path)
    train = MSRVTTQADataset(data_root=str(root), split='train', answer_vocab=VOCAB)
    assert len(train) == 7  # "red" is outside the top 3 and dropped for training
    item = train.get_data_info(1)
    assert item == dict(qid=1, vid='video0', question='who plays?', answer='man',
                        question_type='who', answer_label=0,
                        video_path=osp.join(str(root), 'videos', 'video0.mp4'),
                        sample_idx=1, data_root=str(root))
    assert {train.get_data_info(i)['vid'] for i in range(7)} == {'video0', 'video1'}
    test = MSRVTTQADataset(data_root=str(root), split='test', answer_vocab=VOCAB,
                           test_mode=True)
    assert [test.get_data_info(i)['answer_label'] for i in range(3)] == [0, -1, -1]
    assert [test.get_data_info(i)['question_type'] for i in range(3)] == ['who', 'what', 'how']


@pytest.mark.parametrize('bad,match', [
    (dict(question='', answer='a', video_id=0, id=5),
     r'train_qa.json\[1\]: field "question" must be a non-empty str.*qid=5'),
    (dict(answer='a', video_id=0, id=5), r'train_qa.json\[1\]: missing field "question".*qid=5'),
    (dict(question='q?', answer=' . ', video_id=0, id=5),
     r'train_qa.json\[1\]: field "answer" is empty after normalisation'),
    (dict(question='q?', answer='a', video_id='clip7', id=5),
     r'train_qa.json\[1\]: field "video_id" must be an int N or "videoN".*qid=5'),
    (dict(question='q?', answer='a', id=5), r'train_qa.json\[1\]: missing field "vid"'),
    (dict(question='q?', answer='a', video_id=0, id=0), r'train_qa.json\[1\]: duplicate qid 0'),
    (dict(question='q?', answer='a', video_id=0), r'train_qa.json\[1\]: field "qid" \(or "id"\)'),
])
def test_malformed_entries_name_file_index_field_and_qid(tmp_path, bad, match):
    root = write_layout(tmp_path, train=[TRAIN[0], bad])
    with pytest.raises(AnnotationError, match=match):
        MSRVTTQADataset(data_root=str(root), split='train')


def test_missing_video_names_path_and_qid(tmp_path):
    root = write_layout(tmp_path, videos=(0, 1))
    with pytest.raises(FileNotFoundError, match=r'video2.mp4 \(first needed by .*test_qa.json'
                                                r'\[0\], qid=100\)'):
        MSRVTTQADataset(data_root=str(root), split='test', test_mode=True)


def test_generic_jsonl_layout(tmp_path):
    (tmp_path / 'v1.mp4').write_bytes(b'')
    (tmp_path / 'qa.jsonl').write_text(
        json.dumps(dict(qid='a', vid='v1', question='Where is it?', answer='Park')) + '\n' +
        json.dumps(dict(qid='b', vid='v1', question='who?', answer='man',
                        question_type='person')) + '\n')
    ds = VideoQADataset(ann_file='qa.jsonl', data_root=str(tmp_path), video_dir='.',
                        answer_vocab=dict(answers=['park']), test_mode=True)
    assert [ds.get_data_info(i)['question_type'] for i in range(2)] == ['where', 'person']
    assert [ds.get_data_info(i)['answer_label'] for i in range(2)] == [0, -1]
    (tmp_path / 'bad.jsonl').write_text('{"qid": 1}\n{oops\n')
    with pytest.raises(AnnotationError, match=r'bad.jsonl:2: invalid JSON'):
        VideoQADataset(ann_file='bad.jsonl', data_root=str(tmp_path), video_dir='.')


def test_synthetic_qa_questions_follow_the_drawn_attributes_and_decode(tmp_path):
    init_default_scope('mmvpeft')
    gen = dict(num_train=2, num_val=3, duration=1.0, fps=4, size=(64, 64))
    pipeline = [dict(type='LoadVideoFrames', num_frames=4),
                dict(type='VideoResize', short_side=32), dict(type='VideoCenterCrop', size=32),
                dict(type='FormatVideo'),
                dict(type='CLIPTokenize', key='question', context_length=16,
                     trim_padding=True),
                dict(type='PackQAInputs')]
    ds = SyntheticQADataset(str(tmp_path / 'syn'), split='val', generator=gen,
                            answer_vocab=dict(answers=list(SYNTHETIC_ANSWERS)),
                            pipeline=pipeline, test_mode=True)
    assert len(ds) == 9
    records = [json.loads(line) for line in
               (tmp_path / 'syn' / 'annotations_val.jsonl').read_text().splitlines()]
    for i in range(9):
        info = ds.get_data_info(i)
        rec = records[i // 3]
        assert info['answer'] == rec[info['question_type']]
        assert info['qid'] == f'{rec["vid"]}#{info["question_type"]}'
    assert [ds.get_data_info(i)['question'] for i in range(3)] == [
        'what color is the shape?', 'what shape is moving?', 'which way does the shape move?']
    out = ds[0]
    assert tuple(out['inputs']['imgs'].shape) == (4, 1, 3, 32, 32)
    assert out['inputs']['text_mask'].all() and out['inputs']['text_tokens'].ndim == 1
    assert out['data_samples']['answer_label'] == SYNTHETIC_ANSWERS.index(records[0]['color'])


def test_train_subset_on_qa_records_qids(tmp_path):
    root = write_layout(tmp_path)
    record = tmp_path / 'work' / 'train_subset.json'
    ds = MSRVTTQADataset(data_root=str(root), split='train',
                         train_subset=dict(fraction=0.5, seed=0, record=str(record)))
    assert len(ds) == 4  # half of the 8 training questions
    saved = json.loads(record.read_text())
    qids = [ds.get_data_info(i)['qid'] for i in range(4)]
    assert saved['id_key'] == 'qid' and saved['ids'] == saved['qids'] == qids
    # stratified: video0 and video1 hold 4 questions each, so each keeps 2
    assert sorted(len(v) for v in saved['per_video'].values()) == [2, 2]
    with pytest.raises(ValueError, match='unknown keys'):
        MSRVTTQADataset(data_root=str(root), split='train', train_subset=dict(frac=0.5))


def test_vocab_file_records_its_digest_and_an_edited_file_is_refused(tmp_path):
    path = tmp_path / 'vocab.json'
    vocab = AnswerVocab(['man', 'dog'], meta=dict(top_k=2))
    vocab.save(str(path))
    data = json.loads(path.read_text())
    assert data['sha256'] == vocab.digest.hex()
    assert AnswerVocab.load(str(path)).digest == vocab.digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ['vocab.json']  # no temp file left
    data['answers'] = ['dog', 'man']
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match='vocab.json: the answers do not match the recorded'):
        AnswerVocab.load(str(path))
    del data['sha256']  # files written before the digest was recorded still load
    path.write_text(json.dumps(data))
    assert AnswerVocab.load(str(path)).answers == ['dog', 'man']
