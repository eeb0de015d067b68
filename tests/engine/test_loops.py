"""The long-video loops: tools/test.py streams frame pipelines window by window and gives
the predictions and metrics of decoding each video whole."""
import json
import os.path as osp

import numpy as np
import pytest

import mmvpeft  # noqa: F401
from mmvpeft.apis.config import resolve_config
from mmvpeft.datasets.transforms.video_stream import ClipStream

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
READ_DEMO = osp.join(REPO_ROOT, 'configs', 'demo', 'read_demo.py')
WINDOW = 4


def _options(root):
    gen = 'test_dataloader.dataset.generator'
    # 2 val videos of 24 one-second clips (6 windows long), 2-3 queries each
    return [f'data_root={root}', f'{gen}.num_videos=8', f'{gen}.duration=24.0',
            f'long_video.window={WINDOW}', 'long_video.stride=2']


def _dump(path):
    return {p['qid']: p for p in map(json.loads, path.read_text().splitlines())}


def test_resolve_pass_picks_the_streaming_loops_for_frame_pipelines(tmp_path):
    child = tmp_path / 'long.py'
    child.write_text(f"_base_ = ['{READ_DEMO}']\nlong_video = dict(window=4)\n")
    cfg = resolve_config(str(child), str(tmp_path / 'wd'), log=False)
    assert cfg.test_cfg['type'] == 'LongVideoTestLoop'
    assert cfg.val_cfg['type'] == 'LongVideoValLoop'
    child.write_text(f"_base_ = ['{READ_DEMO}']\nlong_video = dict(window=4, stream=False)\n")
    cfg = resolve_config(str(child), str(tmp_path / 'wd'), log=False)
    assert cfg.test_cfg['type'] == 'TestLoop' and cfg.val_cfg['type'] == 'ValLoop'
    assert 'stream' not in cfg.model.test_cfg['long_video']  # the loops' key, not the model's
    child.write_text(f"_base_ = ['{READ_DEMO}']\nlong_video = dict(window=4, stream='yes')\n")
    with pytest.raises(ValueError, match='long_video.stream'):
        resolve_config(str(child), str(tmp_path / 'wd'), log=False)


def test_tools_test_streams_and_matches_decoding_whole_videos(tmp_path, load_tool,
                                                              monkeypatch):
    streams = []
    close = ClipStream.close

    def record(self):  # what each stream held, before it lets go
        streams.append((self.num_clips, self.peak_frames, self.decoded_frames))
        close(self)

    monkeypatch.setattr(ClipStream, 'close', record)
    root, test = tmp_path / 'data', load_tool('test')
    streamed = test.main([READ_DEMO, 'none', '--work-dir', str(tmp_path / 'a'), '--dump',
                          str(tmp_path / 'a.jsonl'), '--cfg-options', *_options(root)])
    # one stream per video, its queries run together; at most one window of frames held
    assert len(streams) == 2
    for num_clips, peak, decoded in streams:
        assert num_clips == 24 and 0 < peak <= WINDOW and decoded >= num_clips
    del streams[:]
    whole = test.main([READ_DEMO, 'none', '--work-dir', str(tmp_path / 'b'), '--dump',
                       str(tmp_path / 'b.jsonl'), '--cfg-options', *_options(root),
                       'long_video.stream=False'])
    assert streams == []  # decoded whole by LoadVideoClips, windowed by the model
    assert streamed.keys() == whole.keys()
    for key, value in whole.items():
        if key not in ('time', 'data_time'):
            assert streamed[key] == pytest.approx(value, abs=1e-6), key
    a, b = _dump(tmp_path / 'a.jsonl'), _dump(tmp_path / 'b.jsonl')
    assert a.keys() == b.keys() and len(a) >= 4
    for qid, pred in a.items():
        assert len(pred['pred_saliency_scores']) == 24
        assert pred['pred_saliency_scores'] == pytest.approx(b[qid]['pred_saliency_scores'],
                                                             abs=2e-4)
        assert np.allclose(pred['pred_relevant_windows'], b[qid]['pred_relevant_windows'],
                           atol=2e-4)
