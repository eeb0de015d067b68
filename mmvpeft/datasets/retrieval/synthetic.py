"""``VideoTextRetrievalDataset`` over the synthetic captioned videos (moving shapes)."""
from typing import Optional

from mmengine.dist import barrier, get_dist_info

from mmvpeft.registry import DATASETS
from ..synthetic.retrieval import generate_synthetic_retrieval
from .base import VideoTextRetrievalDataset


@DATASETS.register_module()
class SyntheticRetrievalDataset(VideoTextRetrievalDataset):
    """Text-video retrieval on generated videos, for the CPU demo and tests.

    The set is written under ``data_root`` on first use (see
    :func:`~mmvpeft.datasets.synthetic.retrieval.generate_synthetic_retrieval`; it refuses a
    non-empty folder it did not write). Under distributed training rank 0 generates while the
    others wait at a barrier. The pipeline then decodes the mp4 files like real videos.

    Args:
        data_root: Output folder of the generator.
        split: ``'train'`` or ``'val'``.
        generator: Arguments of ``generate_synthetic_retrieval`` (``num_train``, ``num_val``,
            ``duration``, ``fps``, ``size``, ``seed``).
        **kwargs: As :class:`VideoTextRetrievalDataset` (``pipeline``, ``test_mode``, ...).
    """

    def __init__(self, data_root: str, split: str = 'train',
                 generator: Optional[dict] = None, **kwargs) -> None:
        if split not in ('train', 'val'):
            raise ValueError(f'split must be "train" or "val", got {split!r}')
        rank, world_size = get_dist_info()
        if rank == 0:
            generate_synthetic_retrieval(data_root, **(generator or {}))
        if world_size > 1:
            barrier()
            if rank != 0:  # returns at once on a shared filesystem
                generate_synthetic_retrieval(data_root, **(generator or {}))
        super().__init__(ann_file=f'annotations_{split}.jsonl', data_root=data_root,
                         video_dir='videos', **kwargs)
