"""mmvpeft: parameter-efficient transfer from image-language to video-language models."""
from .version import __version__

__all__ = ['__version__']
