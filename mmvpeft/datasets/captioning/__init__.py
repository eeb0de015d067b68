from .how2 import How2SummarizationDataset
from .msrvtt import MSRVTTCaptionDataset
from .synthetic_summarization import (SyntheticSummarizationDataset, synthetic_summary,
                                      synthetic_transcript)
from .vatex import VATEXCaptionDataset

__all__ = ['How2SummarizationDataset', 'MSRVTTCaptionDataset', 'SyntheticSummarizationDataset',
           'VATEXCaptionDataset', 'synthetic_summary', 'synthetic_transcript']
