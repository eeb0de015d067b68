"""Building a frozen-prefix cache for a config and training from it, for every task: the
demo configs of grounding (READ), retrieval, captioning, QA and summarization on a few tiny
synthetic videos. Training from the cache gives the losses and gradients of decoding and
running the frozen prefix (float32, to float32 rounding: see ``TOL``)."""
import copy
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import set_random_seed

from mmvpeft.apis.prefix_cache import build_prefix_cache, grid_frame_inds, use_prefix_cache
from mmvpeft.models.backbones.prefix_cache import PrefixCacheError
from mmvpeft.registry import DATASETS, FUNCTIONS, MODELS

DEMOS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
                 'demo')
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
# 16 frames per video for 8 sampled: random training sampling has a choice in every segment.
RETRIEVAL_GEN = dict(num_train=4, num_val=2, duration=4.0, fps=4, size=(64, 64))
READ_GEN = dict(num_videos=4, duration=6.0, fps=4, size=(64, 64), val_ratio=0.25)
# The cache stores each frame's / text's prefix computed on its own, the uncached model runs
# the padded batch: float32 matmuls over other shapes round differently (seen: ~1e-7 in the
# states, up to 4e-6 of a gradient tensor's largest entry after a contrastive loss). A frame
# or text other than the decoded one moves them by 1e-2 and more.
TOL = dict(rtol=1e-5, atol=1e-6)
GRAD_TOL = 2e-5


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    return tmp_path_factory.mktemp('prefix_cache')


def _cfg(name, root):
    cfg = Config.fromfile(osp.join(DEMOS, f'{name}_demo.py'))
    gen = READ_GEN if name == 'read' else RETRIEVAL_GEN
    for loader in LOADERS:
        cfg[loader].dataset.data_root = str(root / ('data_read' if name == 'read' else 'data'))
        cfg[loader].dataset.generator = gen
    cfg.randomness = dict(seed=0)
    return cfg


def _model(model_cfg):
    set_random_seed(0)  # as the Runner and the build tool: the same random tiny CLIP
    model = MODELS.build(copy.deepcopy(model_cfg))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # zero-initialised adapter outputs would leave gradients at zero
        for name, p in model.named_parameters():
            if p.requires_grad and 'up.' in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model.train()


def _items(cfg, loader, indices):
    ds = DATASETS.build(copy.deepcopy(cfg[loader].dataset))
    items = []
    for i in indices:
        np.random.seed(100 + i)  # the samplers draw from NumPy's global generator
        items.append(ds[i])
    return items


def _losses_and_grads(model, batch):
    model.zero_grad()
    torch.manual_seed(2)
    losses = model(batch['inputs'], batch['data_samples'], mode='loss')
    total, _ = model.parse_losses(losses)
    total.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return {k: v.detach() for k, v in losses.items() if 'loss' in k}, grads


@pytest.mark.parametrize('name', ['read', 'retrieval', 'caption', 'qa', 'summarization'])
def test_cached_training_step_equals_decoding(name, root):
    """One cache per config, built from the train and val loaders (random and uniform frame
    sampling); a training batch from it gives the decoded batch's losses and gradients."""
    init_default_scope('mmvpeft')
    cfg = _cfg(name, root)
    cache = str(root / f'cache_{name}')
    report = build_prefix_cache(cfg, cache, dtype='float32', progress=False,
                                loaders=('train_dataloader', 'val_dataloader'))
    assert report['videos'] > 0 and report['start_block']['video'] >= 1
    if cfg.model.get('text_backbone'):
        assert report['texts'] > 0
    cached = use_prefix_cache(copy.deepcopy(cfg), cache)
    types = [t['type'] for t in cached.train_dataloader.dataset.pipeline]
    assert types[0] == 'LoadPrefixCache' and 'LoadVideoFrames' not in types
    assert 'LoadVideoClips' not in types and 'FormatVideo' not in types

    plain_items = _items(cfg, 'train_dataloader', (0, 1, 2))
    cached_items = _items(cached, 'train_dataloader', (0, 1, 2))
    for p, c in zip(plain_items, cached_items):
        assert 'video_prefix' in c['inputs'] and 'imgs' not in c['inputs']
        if 'frame_inds' in p['data_samples']:  # the same frames as decoding chose
            np.testing.assert_array_equal(c['data_samples']['frame_inds'],
                                          p['data_samples']['frame_inds'])
    collate = FUNCTIONS.get(cfg.train_dataloader.collate_fn['type'].split('.')[-1])
    plain_model, cached_model = _model(cfg.model), _model(cached.model)
    ref_losses, ref_grads = _losses_and_grads(plain_model, collate(plain_items))
    losses, grads = _losses_and_grads(cached_model, collate(cached_items))
    assert losses.keys() == ref_losses.keys() and grads.keys() == ref_grads.keys()
    assert len(grads) > 0
    for k in losses:
        torch.testing.assert_close(losses[k], ref_losses[k], **TOL, msg=k)
    for k in grads:  # relative to the tensor's largest entry: tiny entries carry noise
        scale = ref_grads[k].abs().max().clamp_min(1e-12)
        err = float((grads[k] - ref_grads[k]).abs().max() / scale)
        assert err < GRAD_TOL, f'{k}: {err:.2e}'

    if name == 'retrieval':  # uniform test sampling reads the same cache
        vt = plain_model.video_backbone
        plain_val = _items(cfg, 'val_dataloader', (0, 1))
        cached_val = _items(cached, 'val_dataloader', (0, 1))
        for p, c in zip(plain_val, cached_val):
            imgs = p['inputs']['imgs']  # (T, 3, H, W) after PackRetrievalInputs
            ref = vt.forward_prefix(imgs[None])[0]  # (T, 1, N, D)
            torch.testing.assert_close(c['inputs']['video_prefix'].float(), ref, **TOL)


def test_stale_caches_are_refused(root):
    init_default_scope('mmvpeft')
    cfg = _cfg('retrieval', root)
    cache = str(root / 'cache_retrieval')
    if not osp.isdir(cache):
        build_prefix_cache(cfg, cache, dtype='float32', progress=False,
                           loaders=('train_dataloader', ))
    # Another crop than the cache's: refused when the dataset is built, naming the field.
    other = copy.deepcopy(cfg)
    other.train_dataloader.dataset.pipeline[1]['short_side'] = 40
    use_prefix_cache(other, cache)
    with pytest.raises(PrefixCacheError, match='frames'):
        DATASETS.build(other.train_dataloader.dataset)
    # Another sampling (frames per video) needs no new cache.
    more = copy.deepcopy(cfg)
    more.train_dataloader.dataset.pipeline[0]['num_frames'] = 4
    use_prefix_cache(more, cache)
    item = DATASETS.build(more.train_dataloader.dataset)[0]
    assert item['inputs']['video_prefix'].shape[:2] == (4, 1)
    # Rebuilding with another dtype is refused unless overwrite.
    with pytest.raises(PrefixCacheError, match='dtype'):
        build_prefix_cache(cfg, cache, dtype='float16', progress=False,
                           loaders=('train_dataloader', ))
    # A cache of the earlier format is refused, naming the field.
    meta_path = osp.join(cache, 'video', 'meta.json')
    with open(meta_path) as f:
        meta = json.load(f)
    old = str(root / 'old_cache' / 'video')
    os.makedirs(old)
    with open(osp.join(old, 'meta.json'), 'w') as f:
        json.dump(dict(meta, format=None), f)
    with pytest.raises(PrefixCacheError, match='format'):
        MODELS.build(dict(cfg.model.video_backbone, prefix_cache=old))
    # A missing video file names the video; a text the cache lacks names its tokens.
    cached = use_prefix_cache(copy.deepcopy(cfg), cache)
    ds = DATASETS.build(cached.train_dataloader.dataset)
    info = ds.get_data_info(0)
    os.remove(osp.join(cache, 'video', f'{info["vid"]}.json'))
    with pytest.raises(PrefixCacheError, match=f'vid={info["vid"]!r}'):
        ds.pipeline(copy.deepcopy(info))
    set_random_seed(0)
    model = MODELS.build(copy.deepcopy(cached.model))
    tokens = torch.tensor([[49406, 7, 8, 49407]])
    with pytest.raises(PrefixCacheError, match='token ids'):
        model.text_backbone(tokens, torch.ones_like(tokens, dtype=torch.bool))


def test_coarse_grid_lets_the_sampler_choose_among_cached_frames(root):
    init_default_scope('mmvpeft')
    inds, rate = grid_frame_inds(16, 4.0, 1.0)
    assert rate == 1.0 and inds.tolist() == [0, 4, 8, 12]
    assert grid_frame_inds(16, 4.0, None)[0].tolist() == list(range(16))
    assert grid_frame_inds(16, 4.0, 8.0)[1] == 4.0  # a grid finer than the video: every frame
    cfg = _cfg('retrieval', root)
    cache = str(root / 'cache_grid')
    r = build_prefix_cache(cfg, cache, dtype='float32', progress=False, grid_fps=2.0,
                           loaders=('train_dataloader', ))
    assert r['frames'] == 8 * r['videos']  # 4 s at 2 fps
    cached = use_prefix_cache(copy.deepcopy(cfg), cache)
    item = _items(cached, 'train_dataloader', (0, ))[0]
    assert item['inputs']['video_prefix'].shape[:2] == (8, 1)
    assert set(item['data_samples']['frame_inds'].tolist()) <= set(range(0, 16, 2))


def test_two_processes_write_what_one_process_writes_and_resume(root, load_tool):
    """``TOOL=build_prefix_cache tools/dist_extract.sh 2`` (two gloo processes under torchrun)
    finishes a cache that one process had half written (its files for some videos and texts
    removed, as an interruption leaves it): the two ranks share the rest, and the cache ends
    with the files and arrays one process writes, with one summed report."""
    import shutil
    import subprocess
    repo = osp.dirname(osp.dirname(DEMOS))
    opts = [f'data_root={root / "data_read_dist"}']
    for loader in LOADERS:
        opts += [f'{loader}.dataset.generator.{k}={v}' for k, v in READ_GEN.items()
                 if k != 'size']
    one, two = root / 'cache_one_process', root / 'cache_two_processes'
    config = osp.join(DEMOS, 'read_demo.py')
    args = ['--dtype', 'float32', '--no-progress', '--cfg-options', *opts]
    load_tool('build_prefix_cache').main([config, str(one), *args])  # also writes the videos
    shutil.copytree(one, two)
    removed = {}
    for sub in ('video', 'text'):
        names = sorted(n for n in os.listdir(two / sub) if n.endswith('.npy'))
        assert len(names) >= 2, sub
        removed[sub] = names[::2]  # the "interrupted" run: every other file missing
        for n in removed[sub]:
            os.remove(two / sub / n)
    env = dict(os.environ, OMP_NUM_THREADS='1', PORT='29543', TOOL='build_prefix_cache')
    proc = subprocess.run(['bash', osp.join(repo, 'tools', 'dist_extract.sh'), '2', config,
                           str(two), *args], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # rank 0 prints the summed report once: the two ranks wrote exactly what was missing
    assert proc.stdout.count(f'{len(removed["video"])} video(s)') == 1, proc.stdout
    assert f'{len(removed["text"])} text(s) written' in proc.stdout, proc.stdout
    for sub in ('video', 'text'):
        names = sorted(os.listdir(one / sub))
        assert names == sorted(os.listdir(two / sub)), sub
        for n in names:
            a, b = one / sub / n, two / sub / n
            if n.endswith('.npy'):
                np.testing.assert_array_equal(np.load(a), np.load(b), err_msg=n)
            else:
                assert json.load(open(a)) == json.load(open(b)), n