from .clip_text import CLIPTextBackbone
from .clip_vision import CLIPVisionBackbone
from .open_clip_utils import clip_mean_std, create_open_clip

__all__ = ['CLIPTextBackbone', 'CLIPVisionBackbone', 'clip_mean_std', 'create_open_clip']
