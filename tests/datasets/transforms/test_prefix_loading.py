"""LoadPrefixCache: a sampler choosing among a cached frame grid gives the frames (and the
states) that decoding would, for frame folders and clip grids; every config that decodes
videos switches to it."""
import copy
import glob
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmvpeft.apis.prefix_cache import (VIDEO_TRANSFORMS, encode_video_grid, use_prefix_cache)
from mmvpeft.datasets.transforms.prefix_loading import frames_key, video_files
from mmvpeft.registry import MODELS, TRANSFORMS

TINY = dict(embed_dim=32,
            vision_cfg=dict(image_size=32, patch_size=16, width=32, layers=2, head_width=16),
            text_cfg=dict(context_length=16, vocab_size=1000, width=32, heads=2, layers=2))
PROCESS = [dict(type='VideoResize', short_side=32), dict(type='VideoCenterCrop', size=32),
           dict(type='FormatVideo')]
CONFIGS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))),
                   'configs')


def _frames(folder, n=10):
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(osp.join(folder, f'img_{i + 1:05d}.jpg'),
                    rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))


def _write_cache(tower, loader, folder, cache, grid_fps=None, frames_per_batch=4):
    key = frames_key([loader] + PROCESS)
    with open(osp.join(cache, 'meta.json'), 'w') as f:
        json.dump(dict(tower.prefix_key(), frames=key, dtype='float32'), f)
    states, grid = encode_video_grid(tower, [loader] + PROCESS,
                                     dict(frame_dir=folder, vid='v0'), grid_fps,
                                     frames_per_batch)
    npy, meta = video_files(cache, 'v0')
    np.save(npy, states)
    with open(meta, 'w') as f:
        json.dump(grid, f)
    return states, grid


@pytest.mark.parametrize('sampling', ['random', 'uniform'])
def test_frame_folder_sampling_over_the_cached_grid(tmp_path, sampling):
    init_default_scope('mmvpeft')
    torch.manual_seed(0)
    tower = MODELS.build(dict(type='CLIPVisionBackbone', model_cfg=TINY,
                              peft=[dict(type='READ', layers=(-1, ), hidden_dim=4)])).eval()
    folder, cache = tmp_path / 'frames', tmp_path / 'cache'
    folder.mkdir(), cache.mkdir()
    _frames(str(folder))
    loader = dict(type='LoadFramesFromFolder', num_frames=4, sampling=sampling, fps=5.0)
    states, grid = _write_cache(tower, loader, str(folder), str(cache))
    assert states.shape[0] == 10 and grid['grid'] == list(range(10))  # chunks of 4 joined

    decode = [TRANSFORMS.build(loader)] + [TRANSFORMS.build(t) for t in PROCESS]
    load = TRANSFORMS.build(dict(type='LoadPrefixCache', cache_dir=str(cache),
                                 sampler=loader, frames=frames_key([loader] + PROCESS)))
    for seed in range(3):
        np.random.seed(seed)
        ref = dict(frame_dir=str(folder), vid='v0')
        for t in decode:
            ref = t(ref)
        np.random.seed(seed)
        got = load(dict(frame_dir=str(folder), vid='v0'))
        np.testing.assert_array_equal(got['frame_inds'], ref['frame_inds'])
        assert got['video_fps'] == ref['video_fps'] == 5.0
        expect = tower.forward_prefix(ref['imgs'][None])[0]  # (T, 1, N, D)
        torch.testing.assert_close(torch.from_numpy(got['video_prefix']), expect,
                                   rtol=1e-5, atol=1e-6)


def test_clip_grid_and_a_coarse_cached_grid(tmp_path):
    init_default_scope('mmvpeft')
    torch.manual_seed(0)
    tower = MODELS.build(dict(type='CLIPVisionBackbone', model_cfg=TINY,
                              peft=[dict(type='READ', layers=(-1, ), hidden_dim=4)])).eval()
    folder, cache = tmp_path / 'frames', tmp_path / 'cache'
    folder.mkdir(), cache.mkdir()
    _frames(str(folder))
    loader = dict(type='LoadFrameFolder', clip_len=0.4, fps=5.0)  # 2 s: 5 clips of 2 frames
    _write_cache(tower, loader, str(folder), str(cache), grid_fps=2.5)
    load = TRANSFORMS.build(dict(type='LoadPrefixCache', cache_dir=str(cache),
                                 sampler=loader, frames=frames_key([loader] + PROCESS)))
    out = load(dict(frame_dir=str(folder), vid='v0', duration=2.0))
    assert out['num_clips'] == 5 and out['clip_len_eff'] == pytest.approx(0.4)
    assert out['video_prefix'].shape[:2] == (5, 1)
    # The grid holds frames 0, 2, 4, 6, 8: clip i (centre 0.4 i + 0.2 s) reads grid frame i.
    assert out['frame_inds'][:, 0].tolist() == [0, 2, 4, 6, 8]
    assert out['video_num_frames'] == 10 and out['video_fps'] == 5.0


def _decoding_configs():
    found = []
    for path in sorted(glob.glob(osp.join(CONFIGS, '*.py'))):
        try:
            cfg = Config.fromfile(path)
        except Exception:  # noqa: BLE001 - a config that needs its data to parse
            continue
        loader = cfg.get('train_dataloader') or {}
        pipeline = (loader.get('dataset') or {}).get('pipeline') or []
        if any(t.get('type') in VIDEO_TRANSFORMS for t in pipeline) and \
                cfg.model.get('video_backbone'):
            found.append(osp.basename(path))
    return found


def test_every_config_that_decodes_videos_switches_to_the_cache():
    names = _decoding_configs()
    # grounding, highlight detection, retrieval, captioning, QA and summarization configs
    assert {'read_qvhighlights.py', 'tokenmix_msrvtt_retrieval.py',
            'tokenmix_msrvtt_qa_generation.py', 'read_how2_summarization.py'} <= set(names)
    for name in names:
        cfg = Config.fromfile(osp.join(CONFIGS, name))
        original = copy.deepcopy(cfg)
        use_prefix_cache(cfg, '/cache')
        assert cfg.model.video_backbone.prefix_cache == '/cache/video', name
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            if not cfg.get(loader):
                continue
            pipeline = cfg[loader].dataset.pipeline
            types = [t['type'] for t in pipeline]
            assert not set(types) & set(VIDEO_TRANSFORMS), (name, loader, types)
            first = pipeline[0]
            assert first['type'] == 'LoadPrefixCache'
            assert first['sampler'] == original[loader].dataset.pipeline[0], (name, loader)
