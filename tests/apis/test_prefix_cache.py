"""Building a frozen-prefix cache for a config and training from it (read_demo, 4 videos)."""
import copy
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmvpeft.apis.prefix_cache import build_prefix_cache, use_prefix_cache
from mmvpeft.datasets import moment_collate
from mmvpeft.models.backbones.prefix_cache import PrefixCacheError
from mmvpeft.registry import DATASETS, MODELS

READ_DEMO = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
                     'configs', 'demo', 'read_demo.py')


def _cfg(root):
    cfg = Config.fromfile(READ_DEMO)
    gen = dict(num_videos=4, duration=6.0, fps=4, size=(64, 64), val_ratio=0.25)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].dataset.data_root = str(root / 'data')
        cfg[name].dataset.generator = gen
    return cfg


def _loss(cfg, batch_items):
    torch.manual_seed(0)  # the Runner's seed: the same random tiny CLIP as the cache's
    model = MODELS.build(copy.deepcopy(cfg.model)).train()
    batch = moment_collate(batch_items)
    losses = model(batch['inputs'], batch['data_samples'], mode='loss')
    return {k: v.item() for k, v in losses.items()}


def test_build_resume_train_from_cache_and_refuse_stale(tmp_path):
    init_default_scope('mmvpeft')
    cfg = _cfg(tmp_path)
    cfg.randomness = dict(seed=0)
    cache = str(tmp_path / 'cache')
    report = build_prefix_cache(cfg, cache, dtype='float32', progress=False)
    assert report['start_block'] == dict(video=1, text=1)
    assert report['videos'] == 4 and report['queries'] > 0
    again = build_prefix_cache(cfg, cache, dtype='float32', progress=False)
    assert again['videos'] == again['queries'] == 0 and again['skipped'] > 0  # resumed

    cached = use_prefix_cache(copy.deepcopy(cfg), cache)
    types = [t['type'] for t in cached.train_dataloader.dataset.pipeline]
    assert types == ['LoadPrefixCache', 'LoadPrefixCache', 'PackMomentInputs']
    plain_ds = DATASETS.build(copy.deepcopy(cfg.train_dataloader.dataset))
    cached_ds = DATASETS.build(copy.deepcopy(cached.train_dataloader.dataset))
    items = [plain_ds[0], plain_ds[1]]
    cached_items = [cached_ds[0], cached_ds[1]]
    assert cached_items[0]['data_samples']['clip_len'] == items[0]['data_samples']['clip_len']
    ref, got = _loss(cfg, items), _loss(cached, cached_items)
    assert ref.keys() == got.keys()
    for k in ref:
        assert got[k] == pytest.approx(ref[k], rel=1e-5, abs=1e-6), k

    # Another frame sampling than the cache's: refused when the dataset is built.
    other = copy.deepcopy(cfg)
    other.train_dataloader.dataset.pipeline[0]['clip_len'] = 2.0
    use_prefix_cache(other, cache)
    with pytest.raises(PrefixCacheError, match='sampling'):
        DATASETS.build(other.train_dataloader.dataset)
    # Rebuilding with another dtype is refused unless --overwrite.
    with pytest.raises(PrefixCacheError, match='dtype'):
        build_prefix_cache(cfg, cache, dtype='float16', progress=False)
    # A missing file names the query.
    info = cached_ds.get_data_info(0)
    os.remove(os.path.join(cache, 'video', f'{info["vid"]}.npz'))
    with pytest.raises(PrefixCacheError, match=f'qid={info["qid"]!r}'):
        cached_ds.pipeline(copy.deepcopy(info))
