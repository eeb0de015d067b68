from .temporal_nms import temporal_nms, window_iou

__all__ = ['temporal_nms', 'window_iou']
