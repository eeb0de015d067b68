"""Load a video's frozen-prefix states (``tools/build_prefix_cache.py``) instead of decoding it.

A video cache holds a fixed frame grid per video: the states entering the first adapted block
of every decoded frame (or of frames at a fixed rate, ``--grid-fps``). At load time the
pipeline's own frame sampler (``LoadVideoFrames`` random or uniform segments,
``LoadVideoClips`` clips on a time grid, their frame-folder twins) plans its frame indices over
that grid, exactly as it would over the decoded video, and the states of those frames take
the place of the decoded pixels: ``video_prefix (T, K, N, D)`` where ``imgs (T, K, 3, H, W)``
would be. One cache therefore serves random training sampling and uniform test sampling, and
with the full grid (the default) the frames chosen are the ones decoding would give.

Text needs no transform: the text tower looks its tokens up in the cache itself
(:class:`mmvpeft.models.backbones.prefix_cache.TextPrefixStore`).
"""
import inspect
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform

from mmvpeft.registry import TRANSFORMS
from mmvpeft.utils.fileio import json_plain

# Frame samplers a cache can stand in for, and what each one's decoding depends on (beyond
# the sampling arguments, which the cache does not fix).
LOADERS = {
    'LoadVideoClips': ('video file', ()),
    'LoadVideoFrames': ('video file', ()),
    'LoadFrameFolder': ('frame folder', ('fps', 'filename_tmpl', 'start_index')),
    'LoadFramesFromFolder': ('frame folder', ('fps', 'filename_tmpl', 'start_index')),
}
# Per-frame processing between the loader and the model, replaced by the cache with it.
PROCESSING = ('VideoResize', 'VideoCenterCrop', 'FormatVideo')


def _cache_api():
    # Imported on use: mmvpeft.models imports the datasets (video QA's answer vocabulary),
    # so a module-level import here would be circular.
    from mmvpeft.models.backbones import prefix_cache
    return prefix_cache


def transform_type(t) -> str:
    """The registered name of a transform config (or object)."""
    typ = t.get('type') if isinstance(t, dict) else type(t).__name__
    return typ if isinstance(typ, str) else getattr(typ, '__name__', str(typ))



def frames_key(video_transforms: Sequence[dict]) -> Dict:
    """The data side of a video cache's key: what the cached frames look like.

    Args:
        video_transforms: a loader (one of :data:`LOADERS`) followed by the processing
            transforms the cache replaces (:data:`PROCESSING`), as configs.

    Returns:
        dict: ``source`` (``'video file'`` / ``'frame folder'``), ``decode`` (the loader
        arguments decoding depends on, defaults filled in) and ``processing`` (the processing
        configs). The sampling arguments (``num_frames``, ``sampling``, ``clip_len``...) are
        not in it: the sampler runs at load time over the cached grid.
    """
    if not video_transforms or transform_type(video_transforms[0]) not in LOADERS:
        raise ValueError(f'the video transforms must start with one of {sorted(LOADERS)}, '
                         f'got {[transform_type(t) for t in video_transforms]}')
    loader = dict(video_transforms[0])
    typ = transform_type(loader)
    source, fields = LOADERS[typ]
    cls = TRANSFORMS.get(typ)
    params = inspect.signature(cls.__init__).parameters if cls is not None else {}
    decode = {f: loader.get(f, params[f].default if f in params else None) for f in fields}
    processing = []
    for t in video_transforms[1:]:
        if transform_type(t) not in PROCESSING:
            raise ValueError(f'{transform_type(t)} between the frame loader and FormatVideo '
                             f'cannot be cached (known: {list(PROCESSING)})')
        processing.append(dict(t, type=transform_type(t)))
    return json_plain(dict(source=source, decode=decode, processing=processing))


def video_files(cache_dir: str, vid) -> tuple:
    """``({vid}.npy, {vid}.json)`` of a video in a cache folder."""
    base = osp.join(cache_dir, str(vid))
    return base + '.npy', base + '.json'


@TRANSFORMS.register_module()
class LoadPrefixCache(BaseTransform):
    """Load the cached states of the frames a sampler chooses, instead of decoding them.

    Required keys: ``vid`` (the cache file's name), and what the sampler reads (``duration``
    for ``LoadVideoClips``). Added keys: ``video_prefix`` ``(T, K, N, D)`` (in the cache's
    dtype; the tower casts), where the loader would add ``imgs (T, K, 3, H, W)``, and the
    sampler's keys (``frame_inds`` as indices of the video's frames, ``num_clips`` /
    ``clip_len_eff`` for clip samplers, ``video_num_frames``, ``video_fps``,
    ``video_duration``).

    Args:
        cache_dir (str): the video cache folder (``CACHE/video``).
        sampler (dict): the frame loader this replaces (``LoadVideoFrames(sampling='random')``,
            ``LoadVideoClips(clip_len=1.0)``...), whose sampling runs over the cached grid.
        frames (dict, optional): :func:`frames_key` of the replaced transforms, checked
            against the cache's ``meta.json``; computed from ``sampling`` when absent.
        kind (str): ``'video'`` (text states are looked up by the text tower).
        sampling (list[dict], optional): the replaced transforms (loader first), the form
            earlier configs used; gives ``sampler`` and ``frames`` when they are absent.

    Raises:
        PrefixCacheError: the cache was built from other decoding / resizing / cropping or
            another format, or a video's files are missing (the message names the vid).
    """

    def __init__(self, cache_dir: str, sampler: Optional[dict] = None,
                 frames: Optional[dict] = None, kind: str = 'video',
                 sampling: Optional[List[dict]] = None):
        api = _cache_api()
        if kind != 'video':
            raise api.PrefixCacheError(
                f"LoadPrefixCache(kind={kind!r}): only 'video' is loaded by the pipeline; the "
                'text tower looks its states up by token ids (build the cache again with '
                'tools/build_prefix_cache.py and set prefix_cache=CACHE_DIR)')
        if sampler is None:
            if not sampling:
                raise ValueError('LoadPrefixCache needs sampler= (the frame loader it replaces)')
            sampler = dict(sampling[0])
        if frames is None:
            frames = frames_key(sampling or [sampler])
        self.cache_dir, self.kind, self.frames = cache_dir, kind, frames
        self.sampler = TRANSFORMS.build(dict(sampler))
        if transform_type(self.sampler) not in LOADERS:
            raise ValueError(f'sampler must be one of {sorted(LOADERS)}, got '
                             f'{transform_type(self.sampler)}')
        meta = api.read_meta(cache_dir)
        expected = dict(format=api.CACHE_FORMAT, tower='vision', frames=frames)
        api.check_meta(meta, expected, ('format', 'tower', 'frames'), cache_dir)

    def transform(self, results: Dict) -> Dict:
        vid = results.get('vid')
        npy, meta_path = video_files(self.cache_dir, vid)
        if not osp.isfile(meta_path) or not osp.isfile(npy):
            raise _cache_api().PrefixCacheError(
                f'prefix cache file {meta_path if not osp.isfile(meta_path) else npy} not '
                f'found (qid={results.get("qid")!r}, vid={vid!r}): the cache was built for '
                'other annotations or is incomplete; rerun tools/build_prefix_cache.py (it '
                'resumes)')
        with open(meta_path, encoding='utf-8') as f:
            grid = json.load(f)
        grid_inds = np.asarray(grid['grid'], dtype=np.int64)
        # The sampler plans over the grid as over a video of len(grid) frames at grid_fps
        # (with the full grid: the video itself), writing its own keys into results.
        if grid.get('nominal_fps'):
            results['_nominal_fps'] = True
        try:
            inds = self.sampler._plan(results, len(grid_inds), float(grid['grid_fps']),
                                      f'prefix cache of video {vid}')
        finally:
            results.pop('_nominal_fps', None)
        states = np.load(npy, mmap_mode='r')  # reads only the chosen frames' pages
        if len(states) != len(grid_inds):
            raise _cache_api().PrefixCacheError(
                f'{npy} holds {len(states)} frames but its grid {len(grid_inds)} (vid={vid!r})'
                ': a corrupt cache; rebuild it')
        results['video_prefix'] = np.ascontiguousarray(states[inds])  # (T, K, N, D)
        results['frame_inds'] = grid_inds[np.asarray(results['frame_inds'])]
        results['video_num_frames'] = int(grid['num_frames'])
        if not grid.get('nominal_fps'):
            results['video_fps'] = float(grid['fps'])
            results['video_duration'] = grid['num_frames'] / grid['fps']
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}(cache_dir={self.cache_dir!r}, '
                f'sampler={self.sampler!r})')
