from .dense_moment_head import DenseMomentHead, build_targets

__all__ = ['DenseMomentHead', 'build_targets']
