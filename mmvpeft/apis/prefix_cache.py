"""Build a frozen-prefix cache for a config, and switch a config to train from it.

    build_prefix_cache(cfg, 'cache/read_tacos')   # what tools/build_prefix_cache.py runs
    use_prefix_cache(cfg, 'cache/read_tacos')     # what ``prefix_cache = DIR`` in a config does

Layout: ``CACHE/video/meta.json`` + per video ``{vid}.npy`` (``(G, N, D)``: the states of a
fixed frame grid, every decoded frame by default) and ``{vid}.json`` (the grid); and
``CACHE/text/meta.json`` + per distinct token sequence ``{sha1}.npy`` (``(L, W)``). Training
samples frames among the grid with the config's own sampler (random in training, uniform in
test: one cache serves both), and the text tower looks its tokens up by their ids (one query
per item, several captions per video, transcript chunks alike). See
:mod:`mmvpeft.models.backbones.prefix_cache` for the key and
:mod:`mmvpeft.datasets.transforms.prefix_loading` for the loading.

Across processes (``tools/build_prefix_cache.py --launcher pytorch|slurm``): rank 0 checks
or writes the cache's ``meta.json`` while the others wait; then rank r of W encodes videos
r, r + W, ... (in dataset order) and distinct token sequences r, r + W, ...; the report
sums every rank's counts. An interrupted run resumes with any number of processes.
"""
import copy
import json
import math
import os
import os.path as osp
import shutil
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from mmvpeft.datasets.transforms.prefix_loading import (LOADERS, PROCESSING, frames_key,
                                                        transform_type, video_files)
from mmvpeft.models.backbones.prefix_cache import (META_FILE, PrefixCacheError, check_meta,
                                                   require_prefix_start, text_key)
from mmvpeft.utils.dist import all_gather_objects, barrier, rank_and_world, rank_shard
from mmvpeft.utils.fileio import atomic_path, json_plain, write_json_atomic

# Transforms a video cache replaces (decoding, sampling, resizing, formatting) and the
# tokenizers whose outputs the text cache covers (they stay in the pipeline).
VIDEO_TRANSFORMS = tuple(LOADERS) + PROCESSING
TEXT_TRANSFORMS = ('CLIPTokenize', 'CLIPTokenizeChunks')
# Token rows a tokenizer adds (the text tower encodes queries, captions, question / context).
_TOKEN_KEYS = (('text_tokens', 'text_mask'), ('context_tokens', 'context_mask'))
_DTYPES = {'float16': np.float16, 'float32': np.float32}
_LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
_EPS = 1e-6


def _type(t) -> str:
    return transform_type(t)


def split_pipeline(pipeline: Sequence) -> Tuple[List[dict], List[dict]]:
    """The video transforms a cache replaces (loader first, in order) and the tokenizers."""
    video = [dict(t) for t in pipeline if _type(t) in VIDEO_TRANSFORMS]
    text = [dict(t) for t in pipeline if _type(t) in TEXT_TRANSFORMS]
    return video, text



def grid_frame_inds(num_frames: int, fps: float, grid_fps: Optional[float] = None
                    ) -> Tuple[np.ndarray, float]:
    """The frames of a video a cache stores, and the rate of that grid.

    Args:
        num_frames: frames ``n`` in the video.
        fps: its frame rate.
        grid_fps: None (or >= fps): every frame; else the frame shown at each multiple of
            ``1 / grid_fps`` seconds (as R2-Tuning caches frames at a fixed rate).

    Returns:
        tuple: int64 ``(G,)`` frame indices, increasing, and the grid's rate (frames per
        second of the grid; ``fps`` for the full grid).
    """
    if grid_fps is None or grid_fps >= fps:
        return np.arange(num_frames, dtype=np.int64), float(fps)
    count = max(1, math.ceil(num_frames / fps * grid_fps - _EPS))
    inds = np.floor(np.arange(count) / grid_fps * fps + _EPS).astype(np.int64)
    return np.clip(inds, 0, num_frames - 1), float(grid_fps)


def _save_npy(path: str, array: np.ndarray) -> None:
    # atomic: an interrupted run never leaves a truncated file
    with atomic_path(path) as tmp:
        np.save(tmp, array)


def _prepare_dir(path: str, meta: dict, overwrite: bool) -> None:
    """Create ``path`` with ``meta``; an existing cache must have exactly this meta."""
    meta_path = osp.join(path, META_FILE)
    if osp.isfile(meta_path):
        with open(meta_path, encoding='utf-8') as f:
            old = json.load(f)
        if json_plain(old) != json_plain(meta):
            if not overwrite:
                check_meta(old, meta, list(meta), path)
            shutil.rmtree(path)
    os.makedirs(path, exist_ok=True)
    if not osp.isfile(meta_path):
        write_json_atomic(meta_path, json_plain(meta), indent=None)


def encode_video_grid(tower, video_transforms: Sequence[dict], info: dict,
                      grid_fps: Optional[float] = None, frames_per_batch: int = 256,
                      device='cpu') -> Tuple[np.ndarray, dict]:
    """Decode a video's frame grid with the config's own loader and processing, and run the
    frozen prefix of ``tower`` on it.

    The loader's frame plan is replaced by the grid (in chunks of ``frames_per_batch``), so
    decoding, resizing and cropping are exactly those of the config.

    Args:
        tower: a ``CLIPVisionBackbone``.
        video_transforms: the loader config followed by the processing configs.
        info: the data info of one item of the video (``video_path`` or ``frame_dir``...).
        grid_fps: see :func:`grid_frame_inds`.

    Returns:
        tuple: float32 ``(G, N, D)`` states and the grid description stored beside them
        (``grid`` frame indices, ``grid_fps``, ``num_frames``, ``fps``, ``nominal_fps``).
    """
    from mmcv.transforms import Compose

    from mmvpeft.registry import TRANSFORMS

    loader = TRANSFORMS.build(copy.deepcopy(dict(video_transforms[0])))
    process = Compose(copy.deepcopy([dict(t) for t in video_transforms[1:]]))
    state = dict(lo=0)

    def plan(results, num_frames, fps, source, **_):  # the loader decodes what this returns
        if 'grid' not in state:
            state['grid'], state['grid_fps'] = grid_frame_inds(num_frames, fps, grid_fps)
            state.update(num_frames=int(num_frames), fps=float(fps),
                         nominal_fps=bool(results.get('_nominal_fps')))
        chunk = state['grid'][state['lo']:state['lo'] + frames_per_batch]
        results['frame_inds'] = chunk
        return chunk[:, None]

    loader._plan = plan
    parts = []
    while True:
        out = process(loader(copy.deepcopy(info)))
        imgs = torch.as_tensor(out['imgs'])  # (C, 1, 3, H, W)
        parts.append(tower.forward_prefix(imgs[None].to(device))[0, :, 0].float().cpu())
        state['lo'] += frames_per_batch
        if state['lo'] >= len(state['grid']):
            break
    grid = dict(grid=state['grid'].tolist(), grid_fps=state['grid_fps'],
                num_frames=state['num_frames'], fps=state['fps'],
                nominal_fps=state['nominal_fps'])
    return torch.cat(parts).numpy(), grid


def token_rows(text_transforms: Sequence[dict], infos: Sequence[dict]) -> List[np.ndarray]:
    """Every distinct valid-token sequence the tokenizers make from the items (queries,
    captions, questions, transcript chunks), in first-seen order."""
    from mmcv.transforms import Compose
    rows = {}
    for cfg in text_transforms:
        tokenize = Compose([copy.deepcopy(dict(cfg))])
        for info in infos:
            out = tokenize(copy.deepcopy(info))
            for tok_key, mask_key in _TOKEN_KEYS:
                if tok_key not in out:
                    continue
                tokens = np.asarray(out[tok_key]).reshape(-1, np.shape(out[tok_key])[-1])
                mask = np.asarray(out[mask_key]).astype(bool).reshape(tokens.shape)
                for t, m in zip(tokens, mask):
                    if m.any():
                        ids = t[m].astype(np.int64)
                        rows.setdefault(text_key(ids), ids)
    return list(rows.values())


def build_prefix_cache(cfg, out_dir: str, dtype: str = 'float16',
                       loaders: Sequence[str] = _LOADERS, device: Optional[str] = None,
                       frames_per_batch: int = 256, progress: bool = True,
                       overwrite: bool = False, grid_fps: Optional[float] = None) -> Dict:
    """Compute and store the frozen-prefix states of every video and text of a config.

    Args:
        cfg: an MMEngine config with ``model`` (CLIP towers) and the dataloaders.
        out_dir: the cache root (``video/`` and ``text/`` below it).
        dtype: ``'float16'`` (default, half the disk) or ``'float32'`` (exact).
        loaders: dataloaders whose datasets to cover.
        device: default CUDA when available.
        frames_per_batch: frames per tower forward.
        progress: tqdm bars.
        overwrite: replace a cache built with another key (else that is an error).
        grid_fps: cache frames at this rate instead of every decoded frame (smaller; the
            samplers then choose among the cached frames).

    With a ``torch.distributed`` process group, each rank encodes its share (see the module
    docstring) and every rank returns the summed report.

    Returns:
        dict: ``videos`` / ``texts`` newly written, ``skipped`` (already cached),
        ``start_block`` per tower, ``frames`` (grid frames written), ``seconds``, ``bytes``
        (and ``processes`` when more than one).

    Raises:
        PrefixCacheError: a tower whose methods touch block 0 (no cache possible), loaders
            that decode frames differently, or an existing cache with another key.
    """
    from mmengine.registry import init_default_scope
    from tqdm import tqdm

    from mmvpeft.registry import DATASETS, MODELS

    if dtype not in _DTYPES:
        raise ValueError(f'dtype must be one of {sorted(_DTYPES)}, got {dtype!r}')
    if grid_fps is not None and not grid_fps > 0:
        raise ValueError(f'grid_fps must be > 0 or None, got {grid_fps}')
    init_default_scope(cfg.get('default_scope', 'mmvpeft'))
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    t0 = time.time()
    seed = (cfg.get('randomness') or {}).get('seed')
    if seed is not None:  # as the Runner does before building the model: random-weight
        from mmengine.runner import set_random_seed  # towers (demos) get the same weights
        set_random_seed(seed)
    model = MODELS.build(copy.deepcopy(cfg.model)).to(device).eval()
    vtower = getattr(model, 'video_backbone', None)
    ttower = getattr(model, 'text_backbone', None)
    report = dict(videos=0, texts=0, frames=0, skipped=0, start_block={}, device=device)
    pipelines = []
    for name in loaders:
        if cfg.get(name) is not None:
            ds = copy.deepcopy(cfg[name].dataset)
            pipelines.append((name, ds, *split_pipeline(ds.get('pipeline', []))))
    if not pipelines:
        raise ValueError(f'the config has none of the dataloaders {list(loaders)}')
    video_dir = osp.join(out_dir, 'video')
    text_dir = osp.join(out_dir, 'text')
    keys = [(name, frames_key(v)) for name, _, v, _ in pipelines if v]
    for name, key in keys[1:]:
        if key != keys[0][1]:
            raise PrefixCacheError(
                f'{name} decodes, resizes or crops frames differently from {keys[0][0]} '
                f'({key} vs {keys[0][1]}); one cache serves one frame setting')
    use_video = vtower is not None and bool(keys)
    use_text = ttower is not None and any(t for _, _, _, t in pipelines)
    if not (use_video or use_text):
        raise PrefixCacheError('no dataloader decodes videos or tokenises text for a CLIP '
                               'tower of this model: nothing to cache')
    rank, world = rank_and_world()
    if use_video:
        report['start_block']['video'] = require_prefix_start(vtower)
        if rank == 0:  # the others wait below: an overwrite may remove the folder
            _prepare_dir(video_dir, dict(vtower.prefix_key(), dtype=dtype,
                                         frames=keys[0][1], grid_fps=grid_fps), overwrite)
    if use_text:
        report['start_block']['text'] = require_prefix_start(ttower)
        if rank == 0:
            _prepare_dir(text_dir, dict(ttower.prefix_key(), dtype=dtype), overwrite)
    barrier()
    if rank != 0:  # a key mismatch stopped rank 0 with the message; say so here too
        for d in ([video_dir] if use_video else []) + ([text_dir] if use_text else []):
            if not osp.isfile(osp.join(d, META_FILE)):
                raise PrefixCacheError(f'{d} has no {META_FILE}: rank 0 could not prepare '
                                       'the cache (see its error)')
    np_dtype = _DTYPES[dtype]

    with torch.no_grad():
        for name, ds_cfg, video_tf, text_tf in pipelines:
            ds_cfg['pipeline'] = []
            dataset = DATASETS.build(ds_cfg)
            infos = [dataset.get_data_info(i) for i in range(len(dataset))]
            if use_video and video_tf:
                seen = {}
                for info in infos:
                    seen.setdefault(info['vid'], info)
                for vid, info in tqdm(rank_shard(seen.items()), desc=f'{name} videos',
                                      disable=not progress or rank != 0):
                    npy, meta_path = video_files(video_dir, vid)
                    if osp.isfile(meta_path) and osp.isfile(npy):
                        report['skipped'] += 1
                        continue
                    states, grid = encode_video_grid(vtower, video_tf, info, grid_fps,
                                                     frames_per_batch, device)
                    _save_npy(npy, states.astype(np_dtype))
                    # last: its presence marks a finished video
                    write_json_atomic(meta_path, grid, indent=None)
                    report['videos'] += 1
                    report['frames'] += len(states)
            if use_text and text_tf:
                rows, groups = token_rows(text_tf, infos), {}
                for ids in rows:  # distinct sequences, same-length ones together (no padding)
                    groups.setdefault(len(ids), {}).setdefault(text_key(ids), ids)
                # Fixed batches of the distinct sequences, whatever is cached or which rank
                # runs them: a float32 batch's rounding depends on its rows, so the files are
                # then the same for any number of processes and any resume.
                batches = [list(g.items())[lo:lo + frames_per_batch] for g in groups.values()
                           for lo in range(0, len(g), frames_per_batch)]
                todo = []
                for batch in rank_shard(batches):
                    missing = [key for key, _ in batch
                               if not osp.isfile(osp.join(text_dir, key + '.npy'))]
                    report['skipped'] += len(batch) - len(missing)
                    if missing:
                        todo.append((batch, set(missing)))
                bar = tqdm(total=sum(len(m) for _, m in todo), desc=f'{name} texts',
                           disable=not progress or rank != 0)
                for batch, missing in todo:
                    ids = torch.as_tensor(np.stack([row for _, row in batch]))
                    states = ttower.forward_prefix(ids.to(device),
                                                   torch.ones_like(ids, dtype=torch.bool)
                                                   .to(device)).float().cpu().numpy()
                    for (key, _), st in zip(batch, states):
                        if key in missing:
                            _save_npy(osp.join(text_dir, key + '.npy'), st.astype(np_dtype))
                    report['texts'] += len(missing)
                    bar.update(len(missing))
                bar.close()
    report['seconds'] = round(time.time() - t0, 2)
    if world > 1:
        reports = all_gather_objects(report)  # also waits for every rank's last file
        for key in ('videos', 'texts', 'frames', 'skipped'):
            report[key] = sum(r[key] for r in reports)
        report['seconds'] = max(r['seconds'] for r in reports)
        report['processes'] = world
    report['bytes'] = sum(osp.getsize(osp.join(d, f)) for d in (video_dir, text_dir)
                          if osp.isdir(d) for f in os.listdir(d))
    return report


def use_prefix_cache(cfg, cache_dir: str):
    """Switch ``cfg`` (in place) to train and test from the cache in ``cache_dir``.

    In every dataloader the video transforms (a frame loader ... ``FormatVideo``) become one
    ``LoadPrefixCache`` carrying the loader as its ``sampler`` (so random training and uniform
    test sampling choose among the cached frames) and the key of the frames it replaces (a
    cache built from other decoding, resizing or cropping is refused). The tokenizers stay;
    the text tower gets ``prefix_cache=`` and looks its tokens' states up. Both towers check
    the model side of the key when built; a tower whose methods touch block 0 cannot use a
    cache, and building it says so.

    Returns:
        the same ``cfg``.
    """
    video_dir = osp.join(cache_dir, 'video')
    text_dir = osp.join(cache_dir, 'text')
    use_video = use_text = False
    has_video_tower = bool(cfg.model.get('video_backbone'))
    has_text_tower = bool(cfg.model.get('text_backbone'))
    for name in _LOADERS:
        loader = cfg.get(name)
        if loader is None:
            continue
        pipeline = list(loader.dataset.get('pipeline', []))
        video_tf, text_tf = split_pipeline(pipeline)
        use_text = use_text or (has_text_tower and bool(text_tf))
        if not (video_tf and has_video_tower):
            continue
        new, placed = [], False
        for t in pipeline:
            if _type(t) in VIDEO_TRANSFORMS:
                if not placed:
                    new.append(dict(type='LoadPrefixCache', cache_dir=video_dir,
                                    sampler=dict(video_tf[0]), frames=frames_key(video_tf)))
                    placed = use_video = True
            else:
                new.append(t)
        loader.dataset.pipeline = new
    if use_video:
        cfg.model.video_backbone.prefix_cache = video_dir
    if use_text:
        cfg.model.text_backbone.prefix_cache = text_dir
    if not (use_video or use_text):
        raise PrefixCacheError('prefix_cache is set but no pipeline decodes videos or '
                               'tokenises text for a CLIP tower: nothing to cache')
    return cfg
