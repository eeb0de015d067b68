from .runner import add_submission_dump, build_runner, load_config, setup_cpu_distributed

__all__ = ['add_submission_dump', 'build_runner', 'load_config', 'setup_cpu_distributed']
