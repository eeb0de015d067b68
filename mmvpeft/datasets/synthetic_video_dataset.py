"""``MomentRetrievalDataset`` over synthetic mp4 videos (moving coloured shapes)."""
import os.path as osp

from mmvpeft.registry import DATASETS
from .moment_dataset import MomentRetrievalDataset
from .synthetic_video import generate_synthetic_videos


@DATASETS.register_module()
class SyntheticVideoMomentDataset(MomentRetrievalDataset):
    """Raw-video grounding on generated videos, for demos and tests.

    The videos and ``annotations_{train,val}.jsonl`` are written under ``data_root`` on first
    use (see :func:`generate_synthetic_videos`); the pipeline then decodes them with decord
    exactly as it would real videos.

    Args:
        data_root: output folder.
        split: ``'train'`` or ``'val'``.
        generator: arguments of :func:`generate_synthetic_videos` (``val_ratio`` defaults to
            0.25).
        **kwargs: passed to ``MomentRetrievalDataset``.
    """

    def __init__(self, data_root: str, split: str = 'train', generator: dict = None, **kwargs):
        if split not in ('train', 'val'):
            raise ValueError(f'split must be "train" or "val", got {split!r}')
        generate_synthetic_videos(data_root, **{'val_ratio': 0.25, **(generator or {})})
        super().__init__(ann_file=osp.join(data_root, f'annotations_{split}.jsonl'),
                         video_dir=osp.join(data_root, 'videos'), **kwargs)
