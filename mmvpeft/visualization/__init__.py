from .timeline import draw_timeline, read_thumbnails

__all__ = ['draw_timeline', 'read_thumbnails']
