from .caption_show import CaptionVisualizer
from .moment_show import MomentVisualizer
from .qa_show import QAVisualizer
from .retrieval_show import RetrievalVisualizer
from .show import add_show_dir, show_metric_type
from .timeline import draw_timeline, read_thumbnails

__all__ = ['draw_timeline', 'read_thumbnails', 'add_show_dir', 'show_metric_type',
           'MomentVisualizer', 'RetrievalVisualizer', 'CaptionVisualizer', 'QAVisualizer']
