from .base import VideoLanguageModel
from .moment_grounder import MomentGrounder, MomentRetriever
from .video_captioner import VideoCaptioner
from .video_qa import VideoQA
from .video_text_retriever import VideoTextRetriever

__all__ = ['VideoLanguageModel', 'MomentGrounder', 'MomentRetriever', 'VideoCaptioner',
           'VideoQA', 'VideoTextRetriever']
