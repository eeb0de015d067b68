"""Load pre-extracted clip and text features in the layout of the public feature releases.

Video: ``{feat_dir}/{vid}.npz['features']`` (or ``{vid}.npy``), one row per clip (2 s for
TaCoS, Charades-STA, QVHighlights). Text: ``{feat_dir}/qid{qid}.npz['last_hidden_state']``.
Several video sources (CLIP + SlowFast) are concatenated along the channel axis.
"""
import os.path as osp
import zipfile
from typing import Optional, Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform

from mmvpeft.registry import TRANSFORMS
from ..base import resolve_item_path


def _load_array(stem: str, key: str, qid, vid) -> Tuple[np.ndarray, str]:
    """Load ``stem.npz[key]`` or ``stem.npy``: ``(array, path)``; errors (missing, truncated,
    NaN / inf values) name the file and the query."""
    for path in (stem + '.npz', stem + '.npy'):
        if osp.isfile(path):
            break
    else:
        raise FileNotFoundError(f'feature file not found: {stem}.npz (or .npy), needed by '
                                f'qid={qid!r} vid={vid!r}')
    try:
        if path.endswith('.npy'):
            array = np.load(path)
        else:
            with np.load(path) as data:
                if key not in data:
                    raise KeyError(f'feature file {path} (qid={qid!r}) has no key "{key}"; '
                                   f'keys: {list(data.keys())}')
                array = data[key]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        # A truncated or empty .npz raises BadZipFile / EOFError deep inside numpy.
        raise OSError(f'cannot read feature file {path} (qid={qid!r}, vid={vid!r}): it is '
                      f'truncated or not a numpy file ({type(e).__name__}: {e}); re-extract '
                      'or re-download it') from e
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise ValueError(f'feature file {path} (qid={qid!r}, vid={vid!r}) holds {bad} NaN/inf '
                         f'value(s) of {array.size}; re-extract it')
    return array, path


def _check_dir(path: str, what: str) -> None:
    if not osp.isdir(path):
        raise FileNotFoundError(f'{what} folder not found: {path}. See README "Data layout" for '
                                'where the public feature releases go.')


def uniform_subsample(num: int, max_num: Optional[int]) -> np.ndarray:
    """Indices of ``max_num`` evenly spaced items out of ``num`` (all if ``num <= max_num``)."""
    if max_num is None or num <= max_num:
        return np.arange(num)
    return np.floor((np.arange(max_num) + 0.5) * num / max_num).astype(np.int64)


@TRANSFORMS.register_module()
class LoadClipFeatures(BaseTransform):
    """Load per-clip video features for ``results['vid']``.

    Args:
        feat_dirs: one folder or several (their features are concatenated; lengths that
            differ by rounding are cut to the shortest).
        key: array name inside ``.npz`` files.
        clip_len: seconds per feature row.
        max_clips: if the video has more clips, evenly subsample them; ``clip_len_eff``
            records the seconds each kept row stands for.
        l2_normalize: L2-normalise each source per row (as moment_detr does).
        dims: expected width of each source, checked per item; None leaves it to the
            dataset check at build time (a file wider or narrower than most of its folder's
            files is an error, see :mod:`mmvpeft.datasets.grounding.validation`).

    Adds:
        video_feat (T, D) float32, video_feat_files (the files read), num_clips, clip_len,
        clip_len_eff.

    Raises:
        OSError: a truncated / unreadable file; ValueError: NaN or inf values, or a width
        other than ``dims`` (each naming the file).
    """

    def __init__(self,
                 feat_dirs: Union[str, Sequence[str]],
                 key: str = 'features',
                 clip_len: float = 2.0,
                 max_clips: Optional[int] = None,
                 l2_normalize: bool = True,
                 dims: Optional[Sequence[int]] = None):
        self.dims = None if dims is None else [int(d) for d in dims]
        self.feat_dirs = [feat_dirs] if isinstance(feat_dirs, str) else list(feat_dirs)
        for d in filter(osp.isabs, self.feat_dirs):  # relative: under the item's data_root
            _check_dir(d, f'video feature (expects {{vid}}.npz with key "{key}", one row per '
                          f'{clip_len:g} s clip)')
        self.key = key
        self.clip_len = clip_len
        self.max_clips = max_clips
        self.l2_normalize = l2_normalize

    def transform(self, results: dict) -> dict:
        feats, files = [], []
        for i, d in enumerate(self.feat_dirs):
            folder = resolve_item_path(results, d)  # d is relative to the item's data_root
            f, path = _load_array(osp.join(folder, results['vid']), self.key, results.get('qid'),
                                  results['vid'])
            f = f.astype(np.float32)
            files.append(path)
            if f.ndim != 2 or len(f) == 0:
                raise ValueError(f'video features of vid={results["vid"]!r} in {path} must be '
                                 f'a non-empty (T, D) array, got shape {f.shape}')
            if self.dims is not None and f.shape[1] != self.dims[i]:
                raise ValueError(f'feature file {path} (vid={results["vid"]!r}) is '
                                 f'{f.shape[1]} wide, expected (T, {self.dims[i]}) like the '
                                 f'other files of {d}')
            if self.l2_normalize:
                f = f / np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-6)
            feats.append(f)
        num = min(len(f) for f in feats)
        feat = np.concatenate([f[:num] for f in feats], axis=-1)
        keep = uniform_subsample(num, self.max_clips)
        results['video_feat'] = feat[keep]
        results['video_feat_files'] = files
        results['num_clips'] = len(keep)
        results['clip_len'] = self.clip_len
        results['clip_len_eff'] = self.clip_len * num / len(keep)
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}(feat_dirs={self.feat_dirs}, key={self.key!r}, '
                f'clip_len={self.clip_len}, max_clips={self.max_clips})')


@TRANSFORMS.register_module()
class LoadTextFeatures(BaseTransform):
    """Load per-token query features from ``{feat_dir}/{prefix}{qid}.npz[key]``.

    Adds:
        text_feat (L, D) float32, L <= max_len.
    """

    def __init__(self,
                 feat_dir: str,
                 key: str = 'last_hidden_state',
                 prefix: str = 'qid',
                 max_len: int = 32,
                 l2_normalize: bool = True,
                 dim: Optional[int] = None):
        self.dim = dim
        if osp.isabs(feat_dir):  # relative: under the item's data_root
            _check_dir(feat_dir, f'text feature (expects {prefix}{{qid}}.npz with key "{key}")')
        self.feat_dir = feat_dir
        self.key = key
        self.prefix = prefix
        self.max_len = max_len
        self.l2_normalize = l2_normalize

    def transform(self, results: dict) -> dict:
        qid = results['qid']
        f, path = _load_array(osp.join(resolve_item_path(results, self.feat_dir),
                                       f'{self.prefix}{qid}'), self.key, qid,
                              results.get('vid'))
        f = f.astype(np.float32)
        results['text_feat_file'] = path
        if f.ndim == 3 and f.shape[0] == 1:  # some releases keep a batch axis
            f = f[0]
        if f.ndim != 2 or len(f) == 0:
            raise ValueError(f'text features of qid={qid!r} in {path} must be a non-empty '
                             f'(L, D) array, got shape {f.shape}')
        if self.dim is not None and f.shape[1] != self.dim:
            raise ValueError(f'feature file {path} (qid={qid!r}) is {f.shape[1]} wide, '
                             f'expected (L, {self.dim}) like the other files of '
                             f'{self.feat_dir}')
        f = f[:self.max_len]
        if self.l2_normalize:
            f = f / np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-6)
        results['text_feat'] = f
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}(feat_dir={self.feat_dir!r}, key={self.key!r}, '
                f'max_len={self.max_len})')
