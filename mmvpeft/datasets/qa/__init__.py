from .answer_vocab import AnswerVocab, build_answer_vocab
from .base import VideoQADataset
from .msrvtt_qa import MSRVTTQADataset
from .records import read_qa_records
from .synthetic import SYNTHETIC_ANSWERS, SyntheticQADataset

__all__ = ['AnswerVocab', 'build_answer_vocab', 'VideoQADataset', 'MSRVTTQADataset',
           'read_qa_records', 'SYNTHETIC_ANSWERS', 'SyntheticQADataset']
