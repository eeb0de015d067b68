"""VATEX captioning (English captions) from ``vatex_{training,validation}_v1.0.json``."""
import json
from typing import Dict, List, Optional

from mmvpeft.registry import DATASETS
from ..base import AnnotationError
from ..retrieval.base import VideoTextRetrievalDataset, check_captions


@DATASETS.register_module()
class VATEXCaptionDataset(VideoTextRetrievalDataset):
    """VATEX: a JSON list of ``{"videoID": "<youtube id>_<start>_<end>", "enCap": [10 str],
    "chCap": [...]}``; videos at ``video_dir/{videoID}{video_ext}``.

    Args:
        split: ``'train'`` (``vatex_training_v1.0.json``) or ``'val'``
            (``vatex_validation_v1.0.json``, the usual test set); ``ann_file`` overrides.
        **kwargs: as :class:`VideoTextRetrievalDataset`.
    """

    SPLIT_FILES = {'train': 'vatex_training_v1.0.json', 'val': 'vatex_validation_v1.0.json'}

    def __init__(self, split: str = 'train', ann_file: Optional[str] = None,
                 video_dir: str = 'videos', **kwargs) -> None:
        if ann_file is None:
            if split not in self.SPLIT_FILES:
                raise ValueError(f'split must be train or val (or give ann_file), got {split!r}')
            ann_file = self.SPLIT_FILES[split]
        super().__init__(ann_file=ann_file, video_dir=video_dir, **kwargs)

    def load_videos(self) -> List[Dict]:
        ann_file = self._require_file(self.ann_file, 'ann_file')
        with open(ann_file, encoding='utf-8') as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise AnnotationError(f'{ann_file}: invalid JSON ({e})') from e
        if not isinstance(data, list):
            raise AnnotationError(f'{ann_file}: expected a JSON list of videos, got '
                                  f'{type(data).__name__}')
        videos = []
        for i, rec in enumerate(data):
            where = f'{ann_file}[{i}]'
            if not isinstance(rec, dict) or not isinstance(rec.get('videoID'), str):
                raise AnnotationError(f'{where}: missing str field "videoID"')
            if 'enCap' not in rec:
                raise AnnotationError(f'{where}: missing field "enCap" '
                                      f'(vid={rec["videoID"]!r})')
            videos.append(dict(vid=rec['videoID'], where=where,
                               captions=check_captions(rec['enCap'], where, rec['videoID'])))
        return videos
