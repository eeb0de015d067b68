from .base import VideoLanguageModel
from .moment_retriever import MomentRetriever

__all__ = ['VideoLanguageModel', 'MomentRetriever']
