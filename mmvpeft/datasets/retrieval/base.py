"""Base text-video retrieval dataset, and the generic JSON-lines layout.

A retrieval set is a list of videos, each with one or more captions. Layout readers
(:mod:`.msrvtt`, :mod:`.msvd`, :mod:`.didemo`) only turn their files into that list by
overriding :meth:`VideoTextRetrievalDataset.load_videos`; this class resolves paths, checks
files and lays the items out:

- training (``test_mode=False``): one item per (video, caption) pair, so a batch of B items
  is B videos with one caption each (the contrastive loss treats the diagonal as positives);
- test (``test_mode=True``): one item per video holding all its captions, so each video is
  decoded and encoded once.

Every item carries ``vid``, ``video_index`` (the video's position in the set: a stable
integer, e.g. for ``SymmetricInfoNCELoss(pair_ids=...)``), ``captions`` (a list, length 1 in
training), ``caption_ids`` (``f'{vid}#{k}'`` with ``k`` the caption's index within its video:
unique across the set) and ``video_path`` (or ``frame_dir``).

Generic layout (for your own data; the synthetic demo writes it), one JSON object a line::

    {"vid": "v0001", "captions": ["a man cooks", "someone fries eggs"], "video": "v0001.mp4"}

``video`` is optional (default ``{vid}{video_ext}``) and relative to ``video_dir``.
"""
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Union

from mmengine.dataset import BaseDataset

from mmvpeft.registry import DATASETS
from mmvpeft.utils.fileio import iter_jsonl
from ..base import (AnnotationError, DataRootMixin, SkipCorruptMixin, TextLengthMixin,
                    VideoFilesMixin, join_root)
from ..identity import IdTypes
from ..low_resource import LowResourceMixin


def check_captions(captions, where: str, vid) -> List[str]:
    """Validate a caption list; returns the captions stripped.

    Args:
        captions: Should be a non-empty list of non-empty str.
        where: ``'file:line'`` (or ``'file[index]'``) for the error message.
        vid: The video the captions belong to (named in errors).

    Raises:
        AnnotationError: naming ``where``, the field and the vid.
    """
    if not isinstance(captions, (list, tuple)) or not captions:
        raise AnnotationError(f'{where}: field "captions" must be a non-empty list of str, got '
                              f'{type(captions).__name__} {captions!r:.80} (vid={vid!r})')
    out = []
    for k, cap in enumerate(captions):
        if not isinstance(cap, str) or not cap.strip():
            raise AnnotationError(f'{where}: field "captions[{k}]" must be a non-empty str, got '
                                  f'{cap!r:.80} (vid={vid!r})')
        out.append(cap.strip())
    return out


@DATASETS.register_module()
class VideoTextRetrievalDataset(TextLengthMixin, LowResourceMixin, VideoFilesMixin, DataRootMixin,
                                SkipCorruptMixin, BaseDataset):
    """Text-video retrieval over a list of captioned videos; reads the generic JSON-lines
    layout (see the module docstring). Subclasses read other layouts.

    ``data_root`` is the one location knob: ``ann_file``, ``video_dir``, ``frame_dir`` (and the
    split files of subclasses) given as relative paths are joined to it here.

    Args:
        ann_file: Annotation file (for this class the ``.jsonl``).
        data_root: Folder the relative paths are relative to.
        video_dir: Folder of the videos; sets ``video_path = video_dir/{video}``.
        video_ext: Extension of ``{vid}{video_ext}`` when a record names no file.
        frame_dir: Folder of extracted frames instead; sets ``frame_dir = frame_dir/{vid}``
            (for ``LoadFramesFromFolder``).
        pipeline: Transforms, e.g. ``LoadVideoFrames``, ``VideoResize``, ``VideoCenterCrop``,
            ``FormatVideo``, ``CLIPTokenize(key='captions', multi=True)``,
            ``PackRetrievalInputs``.
        check_files: Check at build time that every video file (frame folder) exists; a
            missing one raises ``FileNotFoundError`` naming it.
        skip_corrupt: In training, an item whose video cannot be decoded is skipped with a
            warning naming it (another one is drawn). Never in test mode, where a missing
            video would change the metrics.
        indices: Optional subset (int: the first N items, or a list of indices).
        train_subset: Low-resource training, e.g. ``dict(fraction=0.1, seed=0)`` or
            ``dict(count=500)``: a seeded subset of the (video, caption) items stratified by
            video, recorded by caption id (:mod:`mmvpeft.datasets.low_resource`).
        test_mode: One item per video with all captions (see the module docstring).
        **kwargs: Passed to ``mmengine.dataset.BaseDataset``.

    Raises:
        AnnotationError: a malformed annotation; the message names file, line or field, vid.
    """

    subset_id_key = 'caption_id'  # named in the subset record

    def subset_item_id(self, info: dict) -> str:
        """A training item's caption id (``{vid}#{k}``); a test item's ``vid``."""
        ids = info['caption_ids']
        return ids[0] if len(ids) == 1 and not self.test_mode else info['vid']

    def __init__(self,
                 ann_file: str = '',
                 data_root: str = '',
                 video_dir: Optional[str] = None,
                 video_ext: Optional[str] = '.mp4',
                 frame_dir: Optional[str] = None,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 check_files: bool = True,
                 skip_corrupt: bool = False,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 test_mode: bool = False,
                 max_refetch: int = 100,
                 **kwargs) -> None:
        self.video_dir = join_root(data_root, video_dir)
        self.frame_dir = join_root(data_root, frame_dir)
        self.video_ext = video_ext
        self.check_files = check_files
        self.skip_corrupt = skip_corrupt
        super().__init__(ann_file=ann_file, data_root=data_root, pipeline=list(pipeline),
                         indices=indices, test_mode=test_mode, max_refetch=max_refetch,
                         **kwargs)

    # -- layout -------------------------------------------------------------------------

    def load_videos(self) -> List[Dict]:
        """Read the annotation into ``[{'vid', 'captions': [str], 'video'?: filename,
        'extra'?: {field: value}}]`` (``extra`` fields are copied into every item).

        Subclasses override this for their layout; this one reads the generic JSON lines.
        """
        ann_file = self._require_file(self.ann_file, 'ann_file')
        videos, id_types = [], IdTypes(ann_file, 'vid')
        for lineno, record in iter_jsonl(ann_file, AnnotationError):
            where = f'{ann_file}:{lineno}'
            if not isinstance(record, dict):
                raise AnnotationError(f'{where}: expected a JSON object, got '
                                      f'{type(record).__name__}')
            vid = record.get('vid')
            if not isinstance(vid, (str, int)) or isinstance(vid, bool) or vid == '':
                raise AnnotationError(f'{where}: field "vid" must be a non-empty str, got '
                                      f'{vid!r}')
            id_types.check(vid, where)  # 7 and "7" would share one video file
            if 'captions' not in record:
                raise AnnotationError(f'{where}: missing field "captions" (vid={vid!r})')
            info = dict(vid=str(vid), captions=check_captions(record['captions'], where, vid),
                        where=where)
            if record.get('video') is not None:
                if not isinstance(record['video'], str) or not record['video']:
                    raise AnnotationError(f'{where}: field "video" must be a file name, got '
                                          f'{record["video"]!r} (vid={vid!r})')
                info['video'] = record['video']
            videos.append(info)
        return videos

    # -- shared logic -------------------------------------------------------------------

    def load_data_list(self) -> List[dict]:
        videos = self.load_videos()
        if not videos:
            raise AnnotationError(f'{type(self).__name__}: no video in {self.ann_file}')
        seen, missing, data_list = {}, [], []
        for video_index, video in enumerate(videos):
            vid = video['vid']
            where = video.get('where', self.ann_file)
            if vid in seen:
                raise AnnotationError(f'{where}: duplicate vid {vid!r} (first at {seen[vid]})')
            seen[vid] = where
            captions = check_captions(video['captions'], where, vid)
            paths = self.video_paths(video)
            if self.check_files:
                for key, path in paths.items():
                    exists = osp.isfile(path) if key == 'video_path' else osp.isdir(path)
                    if not exists:
                        missing.append(f'{path} (vid={vid!r})')
            caption_ids = [f'{vid}#{k}' for k in range(len(captions))]
            extra = video.get('extra') or {}  # layout-specific fields (e.g. a transcript)
            if self.test_mode:
                data_list.append(dict(vid=vid, video_index=video_index, captions=captions,
                                      caption_ids=caption_ids, **paths, **extra))
            else:
                data_list.extend(
                    dict(vid=vid, video_index=video_index, captions=[cap], caption_ids=[cid],
                         caption_index=k, **paths, **extra)
                    for k, (cap, cid) in enumerate(zip(captions, caption_ids)))
        if missing:
            kind = 'video file' if self.video_dir is not None else 'frame folder'
            raise FileNotFoundError(
                f'{type(self).__name__}: {len(missing)} {kind}(s) not found, e.g. '
                f'{"; ".join(missing[:5])} (set video_dir/data_root, or check_files=False to '
                'fail only when the item is loaded)')
        return data_list
