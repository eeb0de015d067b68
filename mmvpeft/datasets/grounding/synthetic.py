"""``MomentRetrievalDataset`` over the synthetic grounding sets, generated on first use:
clip features with planted concepts (:class:`SyntheticMomentDataset`) and mp4 videos of
moving coloured shapes (:class:`SyntheticVideoMomentDataset`)."""
from mmengine.dist import barrier, get_dist_info

from mmvpeft.registry import DATASETS
from ..synthetic.moments import generate_synthetic_moments
from ..synthetic.videos import generate_synthetic_videos
from .moment import MomentRetrievalDataset


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
        generator = {'val_ratio': 0.25, **(generator or {})}
        # One writer: rank 0 generates while the others wait (they then find it complete).
        rank, world_size = get_dist_info()
        if rank == 0:
            generate_synthetic_videos(data_root, **generator)
        if world_size > 1:
            barrier()
            if rank != 0:
                generate_synthetic_videos(data_root, **generator)
        super().__init__(ann_file=f'annotations_{split}.jsonl', video_dir='videos',
                         data_root=data_root, **kwargs)


@DATASETS.register_module()
class SyntheticMomentDataset(MomentRetrievalDataset):
    """``MomentRetrievalDataset`` over the synthetic set, generated on first use.

    Args:
        data_root: where the files are written; relative ``ann_file`` and pipeline feature
            folders (``clip_features``, ``text_features``) are joined to it.
        split: ``'train'`` or ``'val'``.
        generator: overrides of the generator parameters.
        **kwargs: passed to ``MomentRetrievalDataset`` (pipeline, test_mode, ...).
    """

    def __init__(self, data_root: str, split: str = 'train', generator: dict = None, **kwargs):
        if split not in ('train', 'val'):
            raise ValueError(f'split must be "train" or "val", got {split!r}')
        # One writer: rank 0 generates while the others wait (they then find it complete).
        rank, world_size = get_dist_info()
        if rank == 0:
            generate_synthetic_moments(data_root, **(generator or {}))
        if world_size > 1:
            barrier()
            if rank != 0:
                generate_synthetic_moments(data_root, **(generator or {}))
        super().__init__(ann_file=f'annotations_{split}.jsonl', data_root=data_root, **kwargs)
