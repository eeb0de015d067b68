"""MSRVTT-QA (Xu et al., ACM MM 2017) open-ended video QA in its released layout.

Files under ``data_root``::

    train_qa.json, val_qa.json, test_qa.json
        [{"question": "what is a man doing?", "answer": "cook", "video_id": 0, "id": 0,
          "category_id": 2}, ...]       # video_id an int N or "videoN"
    videos/video{N}.mp4                 # the MSR-VTT videos (as for retrieval)

158,581 / 12,278 / 72,821 questions on the 6,513 / 497 / 2,990 videos of MSR-VTT's
standard split. The question type is the question's first word (what, who, how, when,
where). ``category_id`` (MSR-VTT's video category) is not used.
"""
import re
from typing import Optional

from mmvpeft.registry import DATASETS
from ..base import AnnotationError
from .base import VideoQADataset


@DATASETS.register_module()
class MSRVTTQADataset(VideoQADataset):
    """MSRVTT-QA questions on MSR-VTT videos.

    Args:
        split: ``'train'``, ``'val'`` or ``'test'``: the default ``ann_file`` is
            ``{split}_qa.json`` (what is kept follows ``test_mode``/``drop_oov``).
        ann_file: Annotation JSON relative to ``data_root``; overrides ``split``.
        video_dir: Video folder, relative to ``data_root``.
        answer_vocab: e.g. ``dict(source='train_qa.json', top_k=1500,
            file='answer_vocab_top1500.json')`` (relative to ``data_root``).
        **kwargs: As :class:`VideoQADataset`.
    """

    def __init__(self,
                 split: str = 'train',
                 ann_file: Optional[str] = None,
                 video_dir: Optional[str] = 'videos',
                 **kwargs) -> None:
        if ann_file is None:
            if split not in ('train', 'val', 'test'):
                raise ValueError(f'split must be train, val or test (or give ann_file), '
                                 f'got {split!r}')
            ann_file = f'{split}_qa.json'
        self.split = split
        super().__init__(ann_file=ann_file, video_dir=video_dir, **kwargs)

    def vid_of(self, value, where: str, qid) -> str:
        """``7010``, ``"7010"`` and ``"video7010"`` all name ``video7010`` (its mp4)."""
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return f'video{value}'
        if isinstance(value, str):
            m = re.fullmatch(r'(?:video)?(\d+)', value.strip())
            if m:
                return f'video{int(m.group(1))}'
        raise AnnotationError(f'{where}: field "video_id" must be an int N or "videoN", got '
                              f'{value!r} (qid={qid!r})')
