"""The long_video switch: config resolution, and init_grounder(...).predict on videos and
clip features longer than the trained length (streamed, stitched)."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

import mmvpeft  # noqa: F401
from mmvpeft.apis import init_grounder
from mmvpeft.apis.config import resolve_config
from mmvpeft.apis.long_video import apply_long_video
from mmvpeft.datasets.synthetic.long_videos import long_concept_features, write_long_shape_video

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
READ_DEMO = osp.join(REPO_ROOT, 'configs', 'demo', 'read_demo.py')
FEATURE_DEMO = osp.join(REPO_ROOT, 'configs', 'demo', 'grounding_demo.py')


def test_sliding_switch_lifts_max_clips_of_val_and_test_only(tmp_path):
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'read_tacos.py'))
    train_before = [dict(s) for s in cfg.train_dataloader.dataset.pipeline]
    cfg.long_video = dict(mode='sliding', stride=100)
    lv = apply_long_video(cfg)
    assert lv['window'] == 256 and lv['stride'] == 100  # the trained length: max_clips
    assert cfg.model.test_cfg['long_video'] == lv
    for key in ('val_dataloader', 'test_dataloader'):
        assert cfg[key].dataset.pipeline[0]['max_clips'] is None
    assert [dict(s) for s in cfg.train_dataloader.dataset.pipeline] == train_before

    old = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'read_tacos.py'))
    old.long_video = dict(mode='resample')
    assert apply_long_video(old) is None
    assert old.test_dataloader.dataset.pipeline[0]['max_clips'] == 256
    no_window = Config.fromfile(READ_DEMO)  # its loaders have no max_clips
    no_window.long_video = dict(mode='sliding')
    with pytest.raises(ValueError, match='long_video.window'):
        apply_long_video(no_window)

    child = tmp_path / 'long.py'
    child.write_text(f"_base_ = ['{FEATURE_DEMO}']\nlong_video = dict(window=40, stride=20)\n")
    resolved = resolve_config(str(child), str(tmp_path / 'wd'), log=False)
    assert resolved.model.test_cfg['long_video']['window'] == 40
    assert resolved.test_dataloader.dataset.pipeline[0]['feature_rate'] == 'resample'


@pytest.fixture(scope='module')
def long_video(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('long') / 'long.mp4')
    return path, write_long_shape_video(path, 40.0, (35, 38), fps=4, seed=0)


def test_streamed_prediction_equals_decoding_the_whole_video(long_video):
    path, info = long_video
    lv = dict(window=8, stride=4, batch_windows=3)
    torch.manual_seed(0)
    streamed = init_grounder(READ_DEMO, None, 'cpu', long_video=dict(lv, progress=True))
    r = streamed.predict(path, info['query'])
    assert r['duration'] == pytest.approx(40.0) and r['clip_len'] == 1.0
    assert len(r['saliency']) == 40 and r['num_windows'] == 9
    assert all(0 <= s < e <= 40.0 for s, e, _ in r['windows'])
    # the same model, whole video decoded and windowed inside the model (tools/test.py's path)
    torch.manual_seed(0)
    whole = init_grounder(READ_DEMO, None, 'cpu', long_video=lv)
    whole.model.load_state_dict(streamed.model.state_dict())
    whole.long_video = None
    w = whole.predict_batch([(path, info['query'])])[0]
    assert r['saliency'] == pytest.approx(w['saliency'], abs=1e-5)
    assert np.allclose(np.array(r['windows']), np.array(w['windows']), atol=1e-4)


def test_feature_configs_take_arrays_and_check_their_rate():
    torch.manual_seed(0)
    g = init_grounder(FEATURE_DEMO, None, 'cpu', long_video=dict(window=40, stride=20))
    v = long_concept_features(440, (420, 423), seed=0)
    r = g.predict(v['video_feat'], v['text_feat'])
    assert len(r['saliency']) == 440 and r['num_windows'] == 21
    assert r['duration'] == pytest.approx(880.0)
    # the same video at 1 s per row, said to last 880 s: resampled back to 440 rows
    fine = np.repeat(v['video_feat'], 2, axis=0)
    with pytest.warns(UserWarning, match='resampled to 440 rows'):
        r2 = g.predict(fine, v['text_feat'], duration=880.0)
    assert r2['saliency'] == pytest.approx(r['saliency'], abs=1e-5)
    with pytest.raises(ValueError, match='feature_rate'):
        g.predict(fine, v['text_feat'], duration=880.0, long_video=dict(feature_rate='error'))
    with pytest.raises(ValueError, match='extract_features'):
        g.predict('video.mp4', 'a query')


def test_demo_tool_predicts_a_long_video_in_windows(long_video, tmp_path, load_tool, capsys):
    path, info = long_video
    out = tmp_path / 'timeline.png'
    result = load_tool('demo').main([path, info['query'], '--config', READ_DEMO,
                                     '--checkpoint', 'none', '--out', str(out), '--window', '8',
                                     '--device', 'cpu', '--thumbnails', '2'])
    assert result['num_windows'] == 9 and len(result['saliency']) == 40
    assert str(out) in capsys.readouterr().out and out.is_file()


def test_tools_test_grounds_in_windows_with_the_config_switch(tmp_path, load_tool):
    """tools/test.py with long_video on the feature demo (val videos of 20-40 clips, windows
    of 12): every query gets a saliency score per clip of its whole video."""
    dump = tmp_path / 'preds.jsonl'
    root = tmp_path / 'data'
    gen = 'test_dataloader.dataset.generator'
    load_tool('test').main([FEATURE_DEMO, 'none', '--work-dir', str(tmp_path / 'wd'),
                            '--dump', str(dump), '--cfg-options',
                            f'test_dataloader.dataset.data_root={root}',
                            f'{gen}.num_train_videos=1', f'{gen}.num_val_videos=6',
                            'long_video.window=12', 'long_video.stride=6'])
    import json
    preds = [json.loads(line) for line in dump.read_text().splitlines()]
    anns = {}
    for line in (root / 'annotations_val.jsonl').read_text().splitlines():
        rec = json.loads(line)
        anns[rec['qid']] = rec
    assert len(preds) == len(anns) > 0
    for p in preds:
        clips = np.load(root / 'clip_features' / f'{p["vid"]}.npz')['features'].shape[0]
        assert clips > 12 and len(p['pred_saliency_scores']) == clips
        assert all(0 <= s < e <= anns[p['qid']]['duration'] + 1e-3
                   for s, e, _ in p['pred_relevant_windows'])


def test_queries_of_one_video_share_each_decoded_window(long_video):
    """predict_in_windows (what tools/test.py's long-video loop runs per video): several
    queries give what predict gives each alone, while every frame is decoded once for all
    of them and at most one window of frames is held."""
    from mmvpeft.apis.long_video import predict_in_windows
    from mmvpeft.datasets.transforms.video_stream import ClipStream
    path, info = long_video
    g = init_grounder(READ_DEMO, None, 'cpu', long_video=dict(window=8, stride=4))
    queries = [info['query'], 'a green square moves down', 'a red circle moves to the right']
    bases = [dict(qid=i, query=q, video_path=path, vid='long') for i, q in enumerate(queries)]

    def run(lv):
        stream = ClipStream(path, clip_len=1.0)
        prepare = lambda b: b['inputs']  # noqa: E731 (on the CPU already)
        out = predict_in_windows(g.model, g._post, stream, bases, lv, 1.0, stream.duration,
                                 prepare)
        return out, stream

    out, stream = run(g.long_video)
    assert stream.num_clips == 40 and 0 < stream.peak_frames <= 8
    for q, (pred, meta) in zip(queries, out):
        alone = g.predict(path, q)
        assert meta['num_clips'] == 40 and meta['query'] == q and meta['clip_len'] == 1.0
        assert pred['pred_saliency_scores'] == pytest.approx(alone['saliency'], abs=1e-6)
        assert np.allclose(pred['pred_relevant_windows'], alone['windows'], atol=1e-5)
    # without the rescoring reads, the sweep decodes each of the 40 frames once for 3 queries
    _, stream = run(dict(g.long_video, rescore=False))
    assert stream.decoded_frames == 40 and stream.peak_frames <= 8
