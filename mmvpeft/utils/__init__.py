from .checkpoint import (AtomicLocalBackend, allow_mmengine_checkpoint_types,
                         use_atomic_checkpoint_writes)
from .dist import all_gather_with_grad, dist_world_size
from .param_report import parameter_report

__all__ = ['AtomicLocalBackend', 'allow_mmengine_checkpoint_types',
           'use_atomic_checkpoint_writes', 'parameter_report', 'all_gather_with_grad',
           'dist_world_size']
