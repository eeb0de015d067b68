from .inference import MomentPredictor, init_grounder
from .runner import (add_submission_dump, build_runner, destroy_distributed, load_config,
                     setup_cpu_distributed)

__all__ = ['MomentPredictor', 'init_grounder', 'add_submission_dump', 'build_runner',
           'destroy_distributed', 'load_config', 'setup_cpu_distributed']
