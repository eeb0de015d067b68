from .base import AnnotationError, join_root, resolve_item_path
from .captioning import (How2SummarizationDataset, MSRVTTCaptionDataset,
                         SyntheticSummarizationDataset, VATEXCaptionDataset)
from .collate import (caption_collate, moment_collate, pad_sequences, retrieval_collate,
                      video_captions_collate, video_query_collate)
from .grounding import (HighlightDataset, MomentRetrievalDataset, SyntheticMomentDataset,
                        SyntheticVideoMomentDataset)
from .qa import (AnswerVocab, MSRVTTQADataset, SyntheticQADataset, VideoQADataset,
                 build_answer_vocab)
from .retrieval import (DiDeMoRetrievalDataset, MSRVTTRetrievalDataset, MSVDRetrievalDataset,
                        SyntheticRetrievalDataset, VideoTextRetrievalDataset)
from .synthetic import (generate_synthetic_moments, generate_synthetic_retrieval,
                        generate_synthetic_videos, split_annotations)
from .transforms import *  # noqa: F401,F403

__all__ = ['HighlightDataset', 'moment_collate', 'pad_sequences', 'AnnotationError',
           'MomentRetrievalDataset',
           'SyntheticMomentDataset', 'generate_synthetic_moments', 'generate_synthetic_videos',
           'split_annotations', 'SyntheticVideoMomentDataset', 'DiDeMoRetrievalDataset',
           'MSRVTTRetrievalDataset', 'MSVDRetrievalDataset', 'SyntheticRetrievalDataset',
           'VideoTextRetrievalDataset', 'retrieval_collate', 'generate_synthetic_retrieval',
           'caption_collate', 'video_query_collate', 'video_captions_collate',
           'How2SummarizationDataset', 'MSRVTTCaptionDataset',
           'SyntheticSummarizationDataset', 'VATEXCaptionDataset', 'AnswerVocab',
           'build_answer_vocab', 'VideoQADataset', 'MSRVTTQADataset', 'SyntheticQADataset',
           'join_root', 'resolve_item_path']
