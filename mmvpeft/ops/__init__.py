from .partial_ot import entropic_partial_wasserstein
from .temporal_nms import temporal_nms, window_iou

__all__ = ['entropic_partial_wasserstein', 'temporal_nms', 'window_iou']
