from .how2 import How2SummarizationDataset
from .msrvtt import MSRVTTCaptionDataset
from .synthetic import SyntheticSummarizationDataset
from .vatex import VATEXCaptionDataset

__all__ = ['How2SummarizationDataset', 'MSRVTTCaptionDataset', 'SyntheticSummarizationDataset',
           'VATEXCaptionDataset']
