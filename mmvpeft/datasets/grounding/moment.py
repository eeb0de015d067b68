"""Moment-retrieval dataset over JSON-lines annotations (TaCoS, Charades-STA, ActivityNet
Captions, QVHighlights).

Each line is ``{"qid", "query", "vid", "duration", "relevant_windows": [[start, end], ...]}``
(the format of moment_detr and line/lighthouse). Features or frames are loaded by the
pipeline, so one dataset class serves pre-extracted features and raw videos alike.
"""
import os.path as osp
import warnings
from typing import Callable, List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset

from mmvpeft.registry import DATASETS
from mmvpeft.utils.fileio import iter_jsonl
from ..base import (AnnotationError, DataRootMixin, SkipCorruptMixin, TextLengthMixin,
                    join_root)
from ..low_resource import LowResourceMixin
from .validation import check_feature_files, check_moment_record, window_warning


def _check_field(record: dict, key: str, types, ann_file: str, lineno: int):
    if key not in record:
        raise AnnotationError(f'{ann_file}:{lineno}: missing field "{key}" '
                              f'(qid={record.get("qid")!r})')
    if not isinstance(record[key], types):
        raise AnnotationError(f'{ann_file}:{lineno}: field "{key}" should be {types}, '
                              f'got {type(record[key]).__name__} (qid={record.get("qid")!r})')


def clip_windows(windows: Sequence[Sequence[float]], duration: float):
    """Clip windows to ``[0, duration]``.

    Args:
        windows: ``(K, 2)`` start/end pairs in seconds.
        duration: video length in seconds.

    Returns:
        tuple: ``(kept (K', 2) float32 array, num_changed, num_dropped)``; windows that are
        empty after clipping are dropped.
    """
    kept, changed, dropped = [], 0, 0
    for start, end in windows:
        s, e = max(0.0, float(start)), min(float(duration), float(end))
        if (s, e) != (float(start), float(end)):
            changed += 1
        if e <= s:
            dropped += 1
            continue
        kept.append((s, e))
    return np.asarray(kept, dtype=np.float32).reshape(-1, 2), changed, dropped


@DATASETS.register_module()
class MomentRetrievalDataset(TextLengthMixin, LowResourceMixin, DataRootMixin,
                             SkipCorruptMixin, BaseDataset):
    """Temporal language grounding over JSON-lines moment annotations.

    Args:
        ann_file: path of the ``.jsonl`` annotation file.
        pipeline: transforms that load features (``LoadClipFeatures``, ``LoadTextFeatures``)
            or frames (``LoadVideoClips``, ``CLIPTokenize``) and end with
            ``PackMomentInputs``.
        data_root: the folder relative ``ann_file``, ``video_dir`` and ``frame_dir`` are
            joined to when the dataset is built (the one knob pointing a config at your copy);
            every item carries it as ``data_root``, and feature loaders join their relative
            folders to it.
        video_dir: folder of raw videos; sets ``video_path = video_dir/{vid}{video_ext}``.
        video_ext: video file extension.
        frame_dir: folder of cached frames; sets ``frame_dir = frame_dir/{vid}``.
        require_windows: if True every query must carry ``relevant_windows``; test splits
            without labels (QVHighlights test) set False and are only usable for submission.
        skip_corrupt: in training, an item whose video cannot be read is skipped (with a
            warning naming the file) and another one drawn. In test mode items are never
            skipped silently: the error is raised, since a missing prediction changes metrics.
        indices: optional subset (int: first N queries, or a list of indices).
        train_subset: low-resource training, e.g. ``dict(fraction=0.1, seed=0)`` or
            ``dict(count=500)``: a seeded subset stratified by video (see
            :mod:`mmvpeft.datasets.low_resource`).
        test_mode: evaluation mode.
    """
    ident_key = 'qid'  # named when an unreadable video is skipped


    def __init__(self,
                 ann_file: str,
                 pipeline: List[Union[dict, Callable]] = (),
                 data_root: str = '',
                 video_dir: Optional[str] = None,
                 video_ext: str = '.mp4',
                 frame_dir: Optional[str] = None,
                 require_windows: bool = True,
                 skip_corrupt: bool = False,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 test_mode: bool = False,
                 max_refetch: int = 100,
                 **kwargs):
        # Feature folders of the pipeline are data_root-relative too: every item carries
        # data_root and the loaders join their folders to it (the pipeline is left as given).
        self.video_dir = join_root(data_root, video_dir)
        self.video_ext = video_ext
        self.frame_dir = join_root(data_root, frame_dir)
        self.require_windows = require_windows
        self.skip_corrupt = skip_corrupt
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            pipeline=list(pipeline),
            indices=indices,
            test_mode=test_mode,
            max_refetch=max_refetch,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        ann_file = self.ann_file
        if not osp.isfile(ann_file):
            raise FileNotFoundError(
                f'annotation file not found: {ann_file} (set ann_file in the dataset config; '
                'see docs/data_preparation.md)')
        data_list, clipped, dropped_win, dropped_queries, seen = [], [], [], [], {}
        for lineno, record in iter_jsonl(ann_file, AnnotationError):
            if not isinstance(record, dict):
                raise AnnotationError(f'{ann_file}:{lineno}: expected a JSON object per line')
            for key, types in (('qid', (int, str)), ('query', str), ('vid', str)):
                _check_field(record, key, types, ann_file, lineno)
            # NaN / inf / reversed windows, NaN or missing duration, duplicate qid, blank
            # query: errors naming file, line and qid (mmvpeft/datasets/grounding/validation.py).
            check_moment_record(record, ann_file, lineno, seen, AnnotationError)
            duration = float(record['duration'])
            raw = record.get('relevant_windows')
            if raw is None:
                if self.require_windows:
                    raise AnnotationError(
                        f'{ann_file}:{lineno}: missing field "relevant_windows" '
                        f'(qid={record["qid"]!r}); set require_windows=False for an '
                        'unlabelled split')
                windows = np.zeros((0, 2), np.float32)
            else:
                try:
                    windows, changed, dropped = clip_windows(raw, duration)
                except (TypeError, ValueError) as e:
                    raise AnnotationError(
                        f'{ann_file}:{lineno}: "relevant_windows" must be a list of '
                        f'[start, end] pairs (qid={record["qid"]!r})') from e
                clipped += [record['qid']] * (changed - dropped)
                dropped_win += [record['qid']] * dropped
                if len(windows) == 0:
                    dropped_queries.append(record['qid'])
                    continue
            info = dict(
                qid=record['qid'],
                query=record['query'].strip(),
                vid=record['vid'],
                duration=duration,
                gt_windows=windows)
            if 'saliency_scores' in record:
                info['relevant_clip_ids'] = record.get('relevant_clip_ids')
                info['saliency_scores'] = record['saliency_scores']
            if self.video_dir is not None:
                info['video_path'] = osp.join(self.video_dir, record['vid'] + self.video_ext)
            if self.frame_dir is not None:
                info['frame_dir'] = osp.join(self.frame_dir, record['vid'])
            data_list.append(info)
        if clipped or dropped_win:
            warnings.warn(window_warning(ann_file, clipped, dropped_win, dropped_queries))
        if not data_list:
            raise AnnotationError(f'{ann_file}: no usable query')
        check_feature_files(data_list, getattr(self.pipeline, 'transforms', []), ann_file,
                            self.data_root)
        return data_list
