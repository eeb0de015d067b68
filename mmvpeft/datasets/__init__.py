from .collate import moment_collate, pad_sequences
from .moment_dataset import AnnotationError, MomentRetrievalDataset
from .synthetic_moment import SyntheticMomentDataset, generate_synthetic_moments
from .synthetic_video import generate_synthetic_videos, split_annotations
from .synthetic_video_dataset import SyntheticVideoMomentDataset
from .transforms import *  # noqa: F401,F403

__all__ = ['moment_collate', 'pad_sequences', 'AnnotationError', 'MomentRetrievalDataset',
           'SyntheticMomentDataset', 'generate_synthetic_moments', 'generate_synthetic_videos',
           'split_annotations', 'SyntheticVideoMomentDataset']
