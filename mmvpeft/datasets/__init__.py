from .captioning import (How2SummarizationDataset, MSRVTTCaptionDataset,
                         SyntheticSummarizationDataset, VATEXCaptionDataset)
from .collate import (caption_collate, moment_collate, pad_sequences, retrieval_collate,
                      video_captions_collate, video_query_collate)
from .highlight_dataset import HighlightDataset
from .moment_dataset import AnnotationError, MomentRetrievalDataset
from .qa import (AnswerVocab, MSRVTTQADataset, SyntheticQADataset, VideoQADataset,
                 build_answer_vocab)
from .retrieval import (DiDeMoRetrievalDataset, MSRVTTRetrievalDataset, MSVDRetrievalDataset,
                        SyntheticRetrievalDataset, VideoTextRetrievalDataset)
from .synthetic_moment import SyntheticMomentDataset, generate_synthetic_moments
from .synthetic_retrieval import generate_synthetic_retrieval
from .synthetic_video import generate_synthetic_videos, split_annotations
from .synthetic_video_dataset import SyntheticVideoMomentDataset
from .transforms import *  # noqa: F401,F403

__all__ = ['HighlightDataset', 'moment_collate', 'pad_sequences', 'AnnotationError', 'MomentRetrievalDataset',
           'SyntheticMomentDataset', 'generate_synthetic_moments', 'generate_synthetic_videos',
           'split_annotations', 'SyntheticVideoMomentDataset', 'DiDeMoRetrievalDataset',
           'MSRVTTRetrievalDataset', 'MSVDRetrievalDataset', 'SyntheticRetrievalDataset',
           'VideoTextRetrievalDataset', 'retrieval_collate', 'generate_synthetic_retrieval',
           'caption_collate', 'video_query_collate', 'video_captions_collate',
           'How2SummarizationDataset', 'MSRVTTCaptionDataset',
           'SyntheticSummarizationDataset', 'VATEXCaptionDataset', 'AnswerVocab',
           'build_answer_vocab', 'VideoQADataset', 'MSRVTTQADataset', 'SyntheticQADataset']
