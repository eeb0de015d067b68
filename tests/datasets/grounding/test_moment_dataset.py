import json
import os.path as osp

import numpy as np
import pytest

from mmvpeft.datasets import AnnotationError, MomentRetrievalDataset, moment_collate
from mmvpeft.datasets.transforms import LoadClipFeatures, LoadTextFeatures, PackMomentInputs


def _write_jsonl(path, rows):
    with open(path, 'w') as f:
        for r in rows:
            f.write(json.dumps(r) + '\n')
    return str(path)


@pytest.mark.parametrize('rel_path,count,first_qid', [
    ('tacos/tacos_train_release.jsonl', 9790, 's17-d69_0'),
    ('tacos/tacos_test_release.jsonl', 4001, 's30-d52_0'),
    ('tacos/tacos_val_release.jsonl', 4436, 's34-d28_0'),
    ('charades/charades_train_release.jsonl', 12404, 0),
    ('charades/charades_test_release.jsonl', 3720, 12404),
    ('qvhighlight/highlight_val_release.jsonl', 1550, 2579),
])
def test_real_annotations_load(shared_annotations, rel_path, count, first_qid):
    ann = osp.join(shared_annotations, rel_path)
    with open(ann) as f:
        raw = [json.loads(line) for line in f if line.strip()]
    ds = MomentRetrievalDataset(ann, lazy_init=False)
    assert len(ds) == len(raw) == count
    first = ds.get_data_info(0)
    assert first['qid'] == first_qid
    # Windows are kept as given when inside the video.
    np.testing.assert_allclose(first['gt_windows'], np.asarray(raw[0]['relevant_windows']),
                               rtol=1e-6)
    for i in range(0, count, max(1, count // 50)):
        info = ds.get_data_info(i)
        w = info['gt_windows']
        assert w.shape[1] == 2 and len(w) >= 1
        assert (w[:, 0] >= 0).all() and (w[:, 1] <= info['duration'] + 1e-4).all()
        assert (w[:, 1] > w[:, 0]).all()


def test_activitynet_windows_outside_duration_are_clipped_with_warning(shared_annotations):
    ann = osp.join(shared_annotations, 'activitynet/activitynet_val_release.jsonl')
    with pytest.warns(UserWarning, match=r'5 window\(s\) extended outside \[0, duration\].*clipped'):
        ds = MomentRetrievalDataset(ann)
    assert len(ds) == 17505
    ends = np.array([ds.get_data_info(i)['gt_windows'][:, 1].max() -
                     ds.get_data_info(i)['duration'] for i in range(len(ds))])
    assert (ends <= 1e-4).all()


def test_unlabelled_split_needs_opt_in(shared_annotations):
    ann = osp.join(shared_annotations, 'qvhighlight/highlight_test_release.jsonl')
    with pytest.raises(AnnotationError, match='relevant_windows'):
        MomentRetrievalDataset(ann)
    ds = MomentRetrievalDataset(ann, require_windows=False, test_mode=True)
    assert len(ds) == 1542 and ds.get_data_info(0)['gt_windows'].shape == (0, 2)


def test_clipping_and_dropping(tmp_path):
    ann = _write_jsonl(tmp_path / 'a.jsonl', [
        dict(qid=1, query='a', vid='v', duration=10.0, relevant_windows=[[-1, 4], [8, 12]]),
        dict(qid=2, query='b', vid='v', duration=10.0, relevant_windows=[[11, 14]]),
        dict(qid=3, query='c', vid='v', duration=10.0, relevant_windows=[[2, 3]]),
    ])
    with pytest.warns(UserWarning, match=r'2 window\(s\) extended outside.*clipped.*1 window\(s\) lay '
                                         r'entirely outside.*dropped.*1 query.*\[2\]'):
        ds = MomentRetrievalDataset(ann)
    assert [ds.get_data_info(i)['qid'] for i in range(len(ds))] == [1, 3]
    np.testing.assert_allclose(ds.get_data_info(0)['gt_windows'], [[0, 4], [8, 10]])


@pytest.mark.parametrize('line,match', [
    ('{"qid": 1, "query": "a", "vid": "v", "relevant_windows": [[0, 1]]}', r':1: missing field "duration"'),
    ('{"qid": 1, "query": "a", "vid": "v", "duration": "x", "relevant_windows": [[0, 1]]}', r':1: "duration" must be a number'),
    ('{"qid": 1, "query": "a", "vid": "v", "duration": 5, "relevant_windows": [0, 1]}', r'window 0 of "relevant_windows" must be \[start, end\]'),
    ('{"qid": 1, "query": "a", "vid": "v", "duration": -5, "relevant_windows": [[0, 1]]}', r'"duration" must be a finite number > 0'),
    ('not json', r':1: invalid JSON'),
])
def test_malformed_lines_name_file_and_line(tmp_path, line, match):
    ann = tmp_path / 'bad.jsonl'
    ann.write_text(line + '\n')
    with pytest.raises(AnnotationError, match=match) as err:
        MomentRetrievalDataset(str(ann))
    assert str(ann) in str(err.value)


def test_missing_annotation_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='annotation file not found'):
        MomentRetrievalDataset(str(tmp_path / 'nope.jsonl'))


def _feature_set(tmp_path):
    (tmp_path / 'clip').mkdir()
    (tmp_path / 'sf').mkdir()
    (tmp_path / 'txt').mkdir()
    rng = np.random.default_rng(0)
    np.savez(tmp_path / 'clip' / 'v1.npz', features=rng.normal(size=(6, 4)))
    np.savez(tmp_path / 'sf' / 'v1.npz', features=rng.normal(size=(7, 3)))  # one row longer
    np.savez(tmp_path / 'clip' / 'v2.npz', features=rng.normal(size=(3, 4)))
    np.savez(tmp_path / 'sf' / 'v2.npz', features=rng.normal(size=(3, 3)))
    np.savez(tmp_path / 'txt' / 'qid1.npz', last_hidden_state=rng.normal(size=(5, 8)))
    np.save(tmp_path / 'txt' / 'qid2.npy', rng.normal(size=(2, 8)))
    ann = _write_jsonl(tmp_path / 'a.jsonl', [
        dict(qid=1, query='a', vid='v1', duration=12.0, relevant_windows=[[2, 6]]),
        dict(qid=2, query='b', vid='v2', duration=6.0, relevant_windows=[[0, 2]]),
        dict(qid=3, query='c', vid='v3', duration=6.0, relevant_windows=[[0, 2]]),
    ])
    pipeline = [LoadClipFeatures([str(tmp_path / 'clip'), str(tmp_path / 'sf')]),
                LoadTextFeatures(str(tmp_path / 'txt')), PackMomentInputs()]
    return MomentRetrievalDataset(ann, pipeline=pipeline)


def test_feature_loading_concat_normalise_and_collate(tmp_path):
    ds = _feature_set(tmp_path)
    a, b = ds[0], ds[1]
    assert a['inputs']['video_feat'].shape == (6, 7)  # cut to the shorter source, 4 + 3 dims
    # Each source is L2-normalised per row before concatenation.
    np.testing.assert_allclose(a['inputs']['video_feat'][:, :4].norm(dim=-1), 1, rtol=1e-5)
    assert a['inputs']['text_feat'].shape == (5, 8)
    assert a['data_samples']['clip_len'] == 2.0 and a['data_samples']['num_clips'] == 6
    batch = moment_collate([a, b])
    assert batch['inputs']['video_feat'].shape == (2, 6, 7)
    assert batch['inputs']['video_mask'].tolist() == [[True] * 6, [True] * 3 + [False] * 3]
    assert batch['inputs']['text_mask'].sum(1).tolist() == [5, 2]
    assert (batch['inputs']['video_feat'][1, 3:] == 0).all()


def test_missing_feature_file_names_file_and_query(tmp_path):
    ds = _feature_set(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"v3\.npz.*qid=3 vid='v3'"):
        ds[2]


def test_max_clips_keeps_seconds_mapping(tmp_path):
    ds = _feature_set(tmp_path)
    ds.pipeline.transforms[0].max_clips = 3
    sample = ds[0]['data_samples']
    assert ds[0]['inputs']['video_feat'].shape[0] == 3
    assert sample['clip_len'] == pytest.approx(4.0)  # 6 clips of 2 s kept as 3 of 4 s


def test_missing_feature_folder_says_what_goes_where(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'video feature .*\{vid\}\.npz.*"features".*'
                                                r'2 s clip.*docs/data_preparation.md'):
        LoadClipFeatures(str(tmp_path / 'clip_features'))
    with pytest.raises(FileNotFoundError, match=r'text feature .*qid\{qid\}\.npz'):
        LoadTextFeatures(str(tmp_path / 'txt'))


def test_skip_corrupt_video_in_training_only(tmp_path):
    import cv2

    from mmvpeft.datasets.transforms import LoadVideoClips, VideoReadError
    videos = tmp_path / 'videos'
    videos.mkdir()
    writer = cv2.VideoWriter(str(videos / 'good.mp4'), cv2.VideoWriter_fourcc(*'mp4v'), 4,
                             (64, 64))
    for i in range(16):
        writer.write(np.full((64, 64, 3), 8 * i, np.uint8))
    writer.release()
    (videos / 'bad.mp4').write_bytes(b'\x00not a video' * 100)
    ann = _write_jsonl(tmp_path / 'a.jsonl', [
        dict(qid=1, query='a', vid='bad', duration=4.0, relevant_windows=[[0, 2]]),
        dict(qid=2, query='b', vid='good', duration=4.0, relevant_windows=[[0, 2]]),
    ])
    kwargs = dict(video_dir=str(videos), pipeline=[LoadVideoClips(clip_len=1.0)])
    train = MomentRetrievalDataset(ann, skip_corrupt=True, **kwargs)
    assert train[0]['vid'] == 'good'  # the unreadable item is skipped, another one drawn
    with pytest.raises(VideoReadError, match='bad.mp4'):
        MomentRetrievalDataset(ann, skip_corrupt=False, **kwargs)[0]
    with pytest.raises(VideoReadError, match='bad.mp4'):  # evaluation never skips
        MomentRetrievalDataset(ann, skip_corrupt=True, test_mode=True, **kwargs)[0]
