from .config import config_changes, resolve_config, write_resolved_config
from .config_checks import CfgOptionsAction, read_config
from .inference import MomentPredictor, build_model_for_inference, init_grounder
from .retrieval_inference import RetrievalPredictor, init_retriever
from .runner import (add_submission_dump, build_runner, check_auto_resume, claim_work_dir,
                     configure_cpu_threads, default_work_dir, destroy_distributed, load_config,
                     setup_cpu_distributed)

__all__ = ['CfgOptionsAction', 'read_config', 'resolve_config', 'config_changes',
           'write_resolved_config', 'default_work_dir', 'MomentPredictor', 'init_grounder',
           'build_model_for_inference', 'RetrievalPredictor', 'init_retriever',
           'add_submission_dump', 'build_runner', 'destroy_distributed', 'load_config',
           'setup_cpu_distributed', 'claim_work_dir', 'check_auto_resume',
           'configure_cpu_threads']
