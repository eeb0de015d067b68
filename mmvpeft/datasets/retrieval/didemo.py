"""DiDeMo paragraph-to-video retrieval in the layout CLIP4Clip uses.

Files under ``data_root``::

    train_data.json, val_data.json, test_data.json
        [{"video": "<file name>", "description": "...", "times": [[s, e], ...], ...}, ...]
        several moment descriptions per video
    videos/<file name>

As in CLIP4Clip, the descriptions of a video are joined (with spaces, in file order) into
one paragraph, its only caption; the moment times are not used. CLIP4Clip reads the first
31 s of each video (DiDeMo was annotated on at most 30 s): ``LoadVideoFrames(max_duration=31)``
does the same.
"""
import json
import os.path as osp
from typing import Dict, List, Optional

from mmvpeft.registry import DATASETS
from ..base import AnnotationError
from .base import VideoTextRetrievalDataset


@DATASETS.register_module()
class DiDeMoRetrievalDataset(VideoTextRetrievalDataset):
    """DiDeMo with one paragraph caption per video.

    Args:
        split: ``'train'``, ``'val'`` or ``'test'``: the default ``ann_file`` is
            ``{split}_data.json`` (the item layout follows ``test_mode``).
        ann_file: Annotation JSON relative to ``data_root``; overrides ``split``.
        video_dir: Video folder, relative to ``data_root``.
        video_ext: None uses the file name of the ``video`` field as is; an extension
            (e.g. ``'.mp4'`` for re-encoded copies) replaces that name's extension.
        **kwargs: As :class:`VideoTextRetrievalDataset`.
    """

    def __init__(self,
                 split: str = 'train',
                 ann_file: Optional[str] = None,
                 video_dir: Optional[str] = 'videos',
                 video_ext: Optional[str] = None,
                 **kwargs) -> None:
        if ann_file is None:
            if split not in ('train', 'val', 'test'):
                raise ValueError(f'split must be train, val or test (or give ann_file), '
                                 f'got {split!r}')
            ann_file = f'{split}_data.json'
        self.split = split
        super().__init__(ann_file=ann_file, video_dir=video_dir, video_ext=video_ext, **kwargs)

    def load_videos(self) -> List[Dict]:
        ann_file = self._require_file(self.ann_file, 'ann_file')
        with open(ann_file, encoding='utf-8') as f:
            try:
                records = json.load(f)
            except json.JSONDecodeError as e:
                raise AnnotationError(f'{ann_file}: invalid JSON ({e})') from e
        if not isinstance(records, list):
            raise AnnotationError(f'{ann_file}: expected a list of moment records, got '
                                  f'{type(records).__name__}')
        videos: Dict[str, Dict] = {}
        for i, rec in enumerate(records):
            where = f'{ann_file}[{i}]'
            name = rec.get('video') if isinstance(rec, dict) else None
            if not isinstance(name, str) or not name:
                raise AnnotationError(f'{where}: field "video" must be a file name, got '
                                      f'{name!r}')
            desc = rec.get('description')
            if not isinstance(desc, str) or not desc.strip():
                raise AnnotationError(f'{where}: field "description" must be a non-empty str, '
                                      f'got {desc!r} (vid={name!r})')
            if name not in videos:
                video = name if self.video_ext is None else osp.splitext(name)[0] + self.video_ext
                videos[name] = dict(vid=name, parts=[], video=video, where=where)
            videos[name]['parts'].append(desc.strip())
        return [dict(vid=v['vid'], captions=[' '.join(v['parts'])], video=v['video'],
                     where=v['where']) for v in videos.values()]
