"""Build a frozen-prefix cache for a config, and switch a config to train from it.

    build_prefix_cache(cfg, 'cache/read_tacos')   # what tools/build_prefix_cache.py runs
    use_prefix_cache(cfg, 'cache/read_tacos')     # what ``prefix_cache = DIR`` in a config does

Layout: ``CACHE/video/meta.json`` + ``CACHE/video/{vid}.npz`` (``states`` (T, K, N, D),
``clip_len_eff``) and ``CACHE/text/meta.json`` + ``CACHE/text/qid{qid}.npz`` (``states`` (L, W),
valid tokens). See :mod:`mmvpeft.models.backbones.prefix_cache` for the key.
"""
import copy
import json
import os
import os.path as osp
import shutil
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from mmvpeft.models.backbones.prefix_cache import (META_FILE, PrefixCacheError, check_meta,
                                                   require_prefix_start)

# Transforms a video cache replaces (decoding, sampling, resizing, formatting) and the text one.
VIDEO_TRANSFORMS = ('LoadVideoClips', 'LoadFrameFolder', 'VideoResize', 'VideoCenterCrop',
                    'FormatVideo')
TEXT_TRANSFORMS = ('CLIPTokenize', )
_DTYPES = {'float16': np.float16, 'float32': np.float32}
_LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _type(t) -> str:
    typ = t.get('type') if isinstance(t, dict) else type(t).__name__
    return typ if isinstance(typ, str) else getattr(typ, '__name__', str(typ))


def split_pipeline(pipeline: Sequence) -> Tuple[List[dict], Optional[dict]]:
    """The video transforms a cache replaces (in order) and the tokenizer config."""
    video = [dict(t) for t in pipeline if _type(t) in VIDEO_TRANSFORMS]
    text = [dict(t) for t in pipeline if _type(t) in TEXT_TRANSFORMS]
    return video, (text[0] if text else None)


def _plain(value):
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _save_npz(path: str, **arrays) -> None:
    fd, tmp = tempfile.mkstemp(prefix='.part.', suffix='.npz', dir=osp.dirname(path))
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)  # atomic: an interrupted run never leaves a truncated file
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def _prepare_dir(path: str, meta: dict, overwrite: bool) -> None:
    """Create ``path`` with ``meta``; an existing cache must have exactly this meta."""
    meta_path = osp.join(path, META_FILE)
    if osp.isfile(meta_path):
        with open(meta_path, encoding='utf-8') as f:
            old = json.load(f)
        if _plain(old) != _plain(meta):
            if not overwrite:
                check_meta(old, meta, list(meta), path)
            shutil.rmtree(path)
    os.makedirs(path, exist_ok=True)
    if not osp.isfile(meta_path):
        with open(meta_path, 'w', encoding='utf-8') as f:
            json.dump(_plain(meta), f, indent=1, sort_keys=True)


def build_prefix_cache(cfg, out_dir: str, dtype: str = 'float16',
                       loaders: Sequence[str] = _LOADERS, device: Optional[str] = None,
                       frames_per_batch: int = 256, progress: bool = True,
                       overwrite: bool = False) -> Dict:
    """Compute and store the frozen-prefix states of every video and query of a config.

    Args:
        cfg: an MMEngine config with ``model`` (CLIP towers) and the dataloaders.
        out_dir: the cache root (``video/`` and ``text/`` below it).
        dtype: ``'float16'`` (default, half the disk) or ``'float32'`` (exact).
        loaders: dataloaders whose datasets to cover.
        device: default CUDA when available.
        frames_per_batch: frames per tower forward.
        progress: tqdm bars.
        overwrite: replace a cache built with another key (else that is an error).

    Returns:
        dict: ``videos`` / ``queries`` newly written, ``skipped`` (already cached),
        ``start_block`` per tower, ``seconds``, ``bytes``.

    Raises:
        PrefixCacheError: a tower whose methods touch block 0 (no cache possible), or an
            existing cache with another key.
    """
    from mmcv.transforms import Compose
    from mmengine.registry import init_default_scope
    from tqdm import tqdm

    from mmvpeft.registry import DATASETS, MODELS

    if dtype not in _DTYPES:
        raise ValueError(f'dtype must be one of {sorted(_DTYPES)}, got {dtype!r}')
    init_default_scope(cfg.get('default_scope', 'mmvpeft'))
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    t0 = time.time()
    seed = (cfg.get('randomness') or {}).get('seed')
    if seed is not None:  # as the Runner does before building the model: random-weight
        from mmengine.runner import set_random_seed  # towers (demos) get the same weights
        set_random_seed(seed)
    model = MODELS.build(copy.deepcopy(cfg.model)).to(device).eval()
    vtower, ttower = model.video_backbone, model.text_backbone
    report = dict(videos=0, queries=0, skipped=0, start_block={}, device=device)
    pipelines = []
    for name in loaders:
        if cfg.get(name) is not None:
            ds = copy.deepcopy(cfg[name].dataset)
            pipelines.append((name, ds, *split_pipeline(ds.get('pipeline', []))))
    if not pipelines:
        raise ValueError(f'the config has none of the dataloaders {list(loaders)}')
    video_dir = osp.join(out_dir, 'video')
    text_dir = osp.join(out_dir, 'text')
    sampling, tokenizer = pipelines[0][2], pipelines[0][3]
    for name, _, s, t in pipelines[1:]:
        if _plain(s) != _plain(sampling) or _plain(t) != _plain(tokenizer):
            raise PrefixCacheError(f'{name} samples frames or tokenises differently from '
                                   f'{pipelines[0][0]}; one cache serves one setting')
    if vtower is not None and sampling:
        k = require_prefix_start(vtower)
        report['start_block']['video'] = k
        _prepare_dir(video_dir, dict(vtower.prefix_key(), dtype=dtype, sampling=sampling),
                     overwrite)
    if ttower is not None and tokenizer:
        k = require_prefix_start(ttower)
        report['start_block']['text'] = k
        _prepare_dir(text_dir, dict(ttower.prefix_key(), dtype=dtype, tokenizer=tokenizer),
                     overwrite)
    np_dtype = _DTYPES[dtype]

    with torch.no_grad():
        for name, ds_cfg, video_tf, text_tf in pipelines:
            ds_cfg['pipeline'] = []
            dataset = DATASETS.build(ds_cfg)
            infos = [dataset.get_data_info(i) for i in range(len(dataset))]
            if vtower is not None and video_tf:
                load = Compose(copy.deepcopy(video_tf))
                seen = {}
                for info in infos:
                    seen.setdefault(info['vid'], info)
                for vid, info in tqdm(seen.items(), desc=f'{name} videos', disable=not progress):
                    path = osp.join(video_dir, f'{vid}.npz')
                    if osp.isfile(path):
                        report['skipped'] += 1
                        continue
                    out = load(copy.deepcopy(info))
                    imgs = torch.as_tensor(out['imgs'])  # (T, K, 3, H, W)
                    per = max(1, frames_per_batch // imgs.shape[1])
                    states = torch.cat([
                        vtower.forward_prefix(imgs[lo:lo + per][None].to(device))[0].cpu()
                        for lo in range(0, len(imgs), per)])
                    _save_npz(path, states=states.numpy().astype(np_dtype),
                              clip_len_eff=np.float64(out.get('clip_len_eff',
                                                              out.get('clip_len'))))
                    report['videos'] += 1
            if ttower is not None and text_tf:
                tokenize = Compose([copy.deepcopy(text_tf)])
                for info in tqdm(infos, desc=f'{name} queries', disable=not progress):
                    path = osp.join(text_dir, f'qid{info["qid"]}.npz')
                    if osp.isfile(path):
                        report['skipped'] += 1
                        continue
                    tok = tokenize(dict(query=info['query']))
                    tokens = torch.as_tensor(tok['text_tokens'])[None].to(device)
                    mask = torch.as_tensor(tok['text_mask'])[None].bool().to(device)
                    states = ttower.forward_prefix(tokens, mask)[0][mask[0]].cpu()
                    _save_npz(path, states=states.numpy().astype(np_dtype))
                    report['queries'] += 1
    report['seconds'] = round(time.time() - t0, 2)
    report['bytes'] = sum(osp.getsize(osp.join(d, f)) for d in (video_dir, text_dir)
                          if osp.isdir(d) for f in os.listdir(d))
    return report


def use_prefix_cache(cfg, cache_dir: str):
    """Switch ``cfg`` (in place) to train and test from the cache in ``cache_dir``.

    Every dataloader's video transforms (``LoadVideoClips`` ... ``FormatVideo``) become one
    ``LoadPrefixCache(kind='video')`` and ``CLIPTokenize`` becomes ``LoadPrefixCache(
    kind='text')``, each carrying the settings it replaces so a cache built with others is
    refused; the towers get ``prefix_cache=`` so they check the model side of the key when
    built. A tower whose methods touch block 0 cannot use a cache: building it says so.
    """
    video_dir = osp.join(cache_dir, 'video')
    text_dir = osp.join(cache_dir, 'text')
    use_video = use_text = False
    for name in _LOADERS:
        loader = cfg.get(name)
        if loader is None:
            continue
        pipeline = list(loader.dataset.get('pipeline', []))
        sampling, tokenizer = split_pipeline(pipeline)
        new, placed = [], False
        for t in pipeline:
            typ = _type(t)
            if typ in VIDEO_TRANSFORMS and cfg.model.get('video_backbone'):
                if not placed:
                    new.append(dict(type='LoadPrefixCache', cache_dir=video_dir, kind='video',
                                    sampling=sampling))
                    placed = use_video = True
            elif typ in TEXT_TRANSFORMS and cfg.model.get('text_backbone'):
                new.append(dict(type='LoadPrefixCache', cache_dir=text_dir, kind='text',
                                tokenizer=tokenizer))
                use_text = True
            else:
                new.append(t)
        loader.dataset.pipeline = new
    if use_video:
        cfg.model.video_backbone.prefix_cache = video_dir
    if use_text:
        cfg.model.text_backbone.prefix_cache = text_dir
    if not (use_video or use_text):
        raise PrefixCacheError('prefix_cache is set but no pipeline decodes videos or '
                               'tokenises queries for a CLIP tower: nothing to cache')
    return cfg
