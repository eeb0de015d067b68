"""MSR-VTT captioning: the standard 6,513 / 497 / 2,990 split of ``MSRVTT_data.json``."""
import json
from typing import Dict, List

from mmvpeft.registry import DATASETS
from ..base import AnnotationError
from ..retrieval.base import VideoTextRetrievalDataset


@DATASETS.register_module()
class MSRVTTCaptionDataset(VideoTextRetrievalDataset):
    """MSR-VTT captioning (20 captions per video) from ``MSRVTT_data.json``.

    The file's ``videos`` list gives each ``video_id`` its ``split`` (``train``: 6,513,
    ``validate``: 497, ``test``: 2,990 videos in the official release); ``sentences`` gives
    the captions. Training items are (video, one caption) pairs; test items one video with
    all its references (``test_mode``).

    Args:
        split: ``'train'``, ``'val'`` (the file's ``validate``) or ``'test'``.
        ann_file: ``MSRVTT_data.json``, relative to ``data_root``.
        video_dir: ``videos`` (``video{N}.mp4``).
        **kwargs: as :class:`VideoTextRetrievalDataset`.
    """

    SPLITS = {'train': 'train', 'val': 'validate', 'validate': 'validate', 'test': 'test'}

    def __init__(self, split: str = 'train', ann_file: str = 'MSRVTT_data.json',
                 video_dir: str = 'videos', **kwargs) -> None:
        if split not in self.SPLITS:
            raise ValueError(f'split must be train, val or test, got {split!r}')
        self.split = self.SPLITS[split]
        super().__init__(ann_file=ann_file, video_dir=video_dir, **kwargs)

    def load_videos(self) -> List[Dict]:
        ann_file = self._require_file(self.ann_file, 'ann_file (MSRVTT_data.json)')
        with open(ann_file, encoding='utf-8') as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise AnnotationError(f'{ann_file}: invalid JSON ({e})') from e
        for key in ('videos', 'sentences'):
            if not isinstance(data, dict) or not isinstance(data.get(key), list):
                raise AnnotationError(f'{ann_file}: missing list field "{key}"')
        videos: Dict[str, Dict] = {}
        for i, v in enumerate(data['videos']):
            if not isinstance(v, dict) or 'video_id' not in v or 'split' not in v:
                raise AnnotationError(f'{ann_file}: videos[{i}]: needs fields "video_id" and '
                                      f'"split", got {v!r:.80}')
            if v['split'] == self.split:
                videos[v['video_id']] = dict(vid=v['video_id'], captions=[],
                                             where=f'{ann_file}: videos[{i}]')
        for i, s in enumerate(data['sentences']):
            if not isinstance(s, dict) or 'video_id' not in s:
                raise AnnotationError(f'{ann_file}: sentences[{i}]: missing field "video_id"')
            if s['video_id'] in videos:
                cap = s.get('caption')
                if not isinstance(cap, str) or not cap.strip():
                    raise AnnotationError(f'{ann_file}: sentences[{i}]: field "caption" must be '
                                          f'a non-empty str (vid={s["video_id"]!r})')
                videos[s['video_id']]['captions'].append(cap)
        empty = [v for v in videos.values() if not v['captions']]
        if empty:
            raise AnnotationError(f'{ann_file}: {len(empty)} {self.split} video(s) have no '
                                  f'sentence, e.g. vid={empty[0]["vid"]!r}')
        if not videos:
            raise AnnotationError(f'{ann_file}: no video with split={self.split!r}')
        return list(videos.values())
