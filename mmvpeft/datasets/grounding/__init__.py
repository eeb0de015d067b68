"""Temporal grounding: moment retrieval, highlight detection and their synthetic sets."""
from .highlight import HighlightDataset
from .moment import MomentRetrievalDataset, clip_windows
from .synthetic import SyntheticMomentDataset, SyntheticVideoMomentDataset

__all__ = ['HighlightDataset', 'MomentRetrievalDataset', 'clip_windows',
           'SyntheticMomentDataset', 'SyntheticVideoMomentDataset']
