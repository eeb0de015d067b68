from .generation import beam_search, greedy_search
from .video_text_decoder import VideoTextDecoder, decode_tokens

__all__ = ['VideoTextDecoder', 'beam_search', 'greedy_search', 'decode_tokens']
