from .inject import inject_read_adapters, read_blocks, read_context
from .read_adapter import ReadAdapter

__all__ = ['ReadAdapter', 'inject_read_adapters', 'read_blocks', 'read_context']
