from .runner import (add_submission_dump, build_runner, destroy_distributed, load_config,
                     setup_cpu_distributed)

__all__ = ['add_submission_dump', 'build_runner', 'destroy_distributed', 'load_config',
           'setup_cpu_distributed']
