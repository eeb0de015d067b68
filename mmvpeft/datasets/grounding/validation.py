"""Checks the grounding and highlight datasets run when they are built, so bad annotations
and feature files fail (or warn) at load, naming the file, line and qid, instead of training
or scoring silently wrong.

* :func:`check_moment_record`: duration present, finite and > 0; query not blank; qid unique
  in the file; every window two finite numbers with start < end.
* :func:`check_feature_files` (reads the pipeline's transforms, never changes them): each
  feature folder must exist under ``data_root``; reads the array headers of every video's
  (and query's) feature file once: a truncated file is an error naming it, a file whose
  width differs from the rest of its folder (or from the transform's ``dims``) is an error
  naming it and the expected width, and videos whose features cover less than their
  annotated duration (by more than one clip: the last clip of a video is often cut) give
  one warning with their count and the worst ratio.
"""
import math
import os.path as osp
import warnings
import zipfile
from collections import Counter
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..base import join_root
from ..identity import IdTypes


def _fail(error, ann_file, lineno, qid, what):
    raise error(f'{ann_file}:{lineno}: {what} (qid={qid!r})')


def check_duration(record: dict, ann_file: str, lineno: int, error) -> float:
    """The record's ``duration`` as a float; an error unless it is a finite number > 0."""
    qid, duration = record.get('qid'), record.get('duration')
    if duration is None:
        _fail(error, ann_file, lineno, qid, 'missing field "duration"')
    if isinstance(duration, bool) or not isinstance(duration, (int, float)):
        _fail(error, ann_file, lineno, qid, f'"duration" must be a number of seconds, got '
              f'{duration!r}')
    if not math.isfinite(duration) or duration <= 0:
        _fail(error, ann_file, lineno, qid, f'"duration" must be a finite number > 0, got '
              f'{duration}')
    return float(duration)


_ID_TYPES = object()  # the key of ``seen`` holding the file's IdTypes (never a qid)


def check_unique_qid(record: dict, ann_file: str, lineno: int, seen: Dict, error) -> None:
    """A qid may appear once per file (a duplicate would be reported after inference as a
    duplicate prediction); ``seen`` maps qid -> first line. qids keep their annotation type:
    ``7`` and ``"7"`` in one file are an error naming both lines (they would share
    ``qid7.npz``)."""
    qid = record.get('qid')
    if qid in seen:
        _fail(error, ann_file, lineno, qid, f'duplicate qid, first on line {seen[qid]}')
    types = seen.get(_ID_TYPES)
    if types is None:
        types = seen[_ID_TYPES] = IdTypes(ann_file, 'qid')
    types.check(qid, f'{ann_file}:{lineno}')
    seen[qid] = lineno


def check_query(record: dict, ann_file: str, lineno: int, error) -> None:
    """A query must hold text: an empty one is encoded as [SOT, EOT] and predicted on."""
    query = record.get('query')
    if isinstance(query, str) and not query.strip():
        _fail(error, ann_file, lineno, record.get('qid'), f'empty or blank "query" ({query!r})')


def check_windows(record: dict, ann_file: str, lineno: int, error) -> None:
    """Every window is ``[start, end]`` of finite numbers with ``start < end``."""
    raw, qid = record.get('relevant_windows'), record.get('qid')
    if raw is None:
        return
    if not isinstance(raw, (list, tuple)):
        _fail(error, ann_file, lineno, qid, '"relevant_windows" must be a list of [start, end]')
    for k, w in enumerate(raw):
        if (not isinstance(w, (list, tuple)) or len(w) != 2 or any(
                isinstance(x, bool) or not isinstance(x, (int, float)) for x in w)):
            _fail(error, ann_file, lineno, qid, f'window {k} of "relevant_windows" must be '
                  f'[start, end] in seconds, got {w!r}')
        start, end = w
        if not (math.isfinite(start) and math.isfinite(end)):
            _fail(error, ann_file, lineno, qid, f'window {k} {list(w)} is not finite (NaN or '
                  'inf)')
        if not start < end:
            _fail(error, ann_file, lineno, qid, f'window {k} {list(w)} is reversed or empty '
                  '(start must be < end)')


def check_moment_record(record: dict, ann_file: str, lineno: int, seen: Dict, error) -> None:
    """All record-level checks of a moment-retrieval line (see the module docstring)."""
    check_duration(record, ann_file, lineno, error)
    check_unique_qid(record, ann_file, lineno, seen, error)
    check_query(record, ann_file, lineno, error)
    check_windows(record, ann_file, lineno, error)


def window_warning(ann_file: str, clipped: List, dropped: List, dropped_queries: List) -> str:
    """What happened to windows outside ``[0, duration]``, said as it is."""
    msg = f'{ann_file}: '
    parts = []
    if clipped:
        parts.append(f'{len(clipped)} window(s) extended outside [0, duration] of their '
                     f'video and were clipped to it (first qids: {clipped[:5]})')
    if dropped:
        parts.append(f'{len(dropped)} window(s) lay entirely outside their video (start at '
                     f'or after its duration) and were dropped (first qids: {dropped[:5]})')
    if dropped_queries:
        parts.append(f'{len(dropped_queries)} query(ies) were left without a window and '
                     f'dropped (first qids: {dropped_queries[:5]})')
    return msg + '; '.join(parts)


def _read_shape(f) -> Tuple[int, ...]:
    version = np.lib.format.read_magic(f)
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
            np.lib.format.read_array_header_2_0)
    return read(f)[0]


def _npz_shape(path: str, key: str) -> Tuple[int, ...]:
    """Shape of ``path[key]`` (``.npz``) or of ``path`` (``.npy``) from its header only."""
    if path.endswith('.npy'):
        with open(path, 'rb') as f:
            return _read_shape(f)
    with zipfile.ZipFile(path) as z:
        with z.open(key + '.npy') as f:
            return _read_shape(f)


def _feature_file(stem: str) -> Optional[str]:
    for path in (stem + '.npz', stem + '.npy'):
        if osp.isfile(path):
            return path
    return None


def _shape_or_error(path: str, key: str, who: str) -> Tuple[int, ...]:
    try:
        return tuple(_npz_shape(path, key))
    except KeyError:
        raise KeyError(f'feature file {path} ({who}) has no array "{key}"') from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise OSError(f'cannot read feature file {path} ({who}): it is truncated or not a '
                      f'numpy file ({type(e).__name__}: {e}); re-extract or re-download it'
                      ) from e


def _majority_width(shapes: Dict[str, Tuple[int, ...]], folder: str, what: str) -> int:
    widths = Counter(s[-1] for s in shapes.values() if len(s) >= 2)
    if not widths:
        return None
    expected, _ = widths.most_common(1)[0]
    for path, s in shapes.items():
        if len(s) >= 2 and s[-1] != expected:
            raise ValueError(f'feature file {path} is {s[-1]} wide, expected {what} width '
                             f'{expected} like {widths[expected]} other file(s) of {folder} '
                             f'(shape {s})')
    return expected


def _feature_folder(data_root: Optional[str], folder: str, what: str) -> str:
    """``folder`` joined to ``data_root`` as the loaders will join it; an error naming it
    when it is not there."""
    path = join_root(data_root, folder)
    if not osp.isdir(path):
        raise FileNotFoundError(f'{what} folder not found: {path} (feat_dir {folder!r}, '
                                f'data_root={data_root!r}). See docs/data_preparation.md for '
                                'where the public feature releases go.')
    return path


def check_feature_files(data_list: List[dict], transforms, ann_file: str,
                        data_root: Optional[str] = None) -> None:
    """Header checks of the feature files a dataset's pipeline will read (see module doc).

    Reads the transforms' settings and never changes them: the folders are joined to
    ``data_root`` here as the loaders join them to each item's ``data_root``.

    Args:
        data_list: the dataset's records (``vid``, ``qid``, ``duration``).
        transforms: the dataset's built pipeline transforms.
        ann_file: named in the warning.
        data_root: the dataset's ``data_root`` (relative feature folders are under it).
    """
    from ..transforms.loading import LoadClipFeatures, LoadTextFeatures
    for t in transforms:
        if isinstance(t, LoadClipFeatures):
            durations = {}
            for r in data_list:
                durations.setdefault(r['vid'], r['duration'])
            dims, lengths = [], {}
            for folder in t.feat_dirs:
                folder = _feature_folder(data_root, folder, 'video feature')
                shapes = {}
                for vid in durations:
                    path = _feature_file(osp.join(folder, vid))
                    if path is not None:  # missing files: the pipeline names them per item
                        shapes[path] = _shape_or_error(path, t.key, f'vid={vid!r}')
                        lengths.setdefault(vid, []).append(shapes[path][0])
                dims.append(_majority_width(shapes, folder, 'video feature'))
            if t.dims is not None:
                for folder, dim, want in zip(t.feat_dirs, dims, t.dims):
                    if dim is not None and dim != want:
                        raise ValueError(f'the feature files of {join_root(data_root, folder)} '
                                         f'are {dim} wide, but the pipeline sets dims={want}')
            short = []
            for vid, rows in lengths.items():
                covered = min(rows) * t.clip_len
                if covered < durations[vid] - t.clip_len:  # more than one clip missing
                    short.append((covered / durations[vid], vid, min(rows), durations[vid]))
            if short:
                ratio, vid, rows, duration = min(short)
                warnings.warn(
                    f'{ann_file}: the features of {len(short)} of {len(lengths)} video(s) '
                    f'cover less than their annotated duration (worst: vid={vid!r}, {rows} '
                    f'rows x {t.clip_len:g} s = {rows * t.clip_len:g} s of {duration:g} s, '
                    f'ratio {ratio:.2f}); windows past the features cannot be found, which '
                    'lowers the scores. Check clip_len and the feature extraction.')
        elif isinstance(t, LoadTextFeatures):
            folder = _feature_folder(data_root, t.feat_dir, 'text feature')
            shapes = {}
            for r in data_list:
                path = _feature_file(osp.join(folder, f'{t.prefix}{r["qid"]}'))
                if path is not None:
                    shapes[path] = _shape_or_error(path, t.key, f'qid={r["qid"]!r}')
            dim = _majority_width(shapes, folder, 'text feature')
            if t.dim is not None and dim is not None and dim != t.dim:
                raise ValueError(f'the feature files of {folder} are {dim} wide, but the '
                                 f'pipeline sets dim={t.dim}')
