from .base import VideoTextRetrievalDataset
from .didemo import DiDeMoRetrievalDataset
from .msrvtt import MSRVTTRetrievalDataset
from .msvd import MSVDRetrievalDataset
from .synthetic import SyntheticRetrievalDataset

__all__ = ['VideoTextRetrievalDataset', 'DiDeMoRetrievalDataset', 'MSRVTTRetrievalDataset',
           'MSVDRetrievalDataset', 'SyntheticRetrievalDataset']
