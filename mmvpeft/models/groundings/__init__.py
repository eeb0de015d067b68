from .moment_retriever import MomentRetriever

__all__ = ['MomentRetriever']
