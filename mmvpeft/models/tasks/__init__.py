from .base import VideoLanguageModel
from .moment_retriever import MomentRetriever
from .video_qa import VideoQA
from .video_text_retriever import VideoTextRetriever

__all__ = ['VideoLanguageModel', 'MomentRetriever', 'VideoQA', 'VideoTextRetriever']
