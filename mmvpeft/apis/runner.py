"""Library side of ``tools/train.py`` and ``tools/test.py``: config handling, CPU-aware
distributed setup and Runner construction, so the tools stay thin."""
import os
import os.path as osp
from typing import Optional

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner


def load_config(config: str, work_dir: Optional[str] = None, cfg_options: Optional[dict] = None,
                launcher: str = 'none', amp: bool = False, resume: Optional[str] = None,
                load_from: Optional[str] = None, allow_base_mismatch: bool = False,
                allow_partial_load: bool = False) -> Config:
    """Read a config and apply the command-line conventions of MMEngine tools: the one
    resolve pass of :func:`mmvpeft.apis.config.resolve_config`, which logs every change it
    makes (and :func:`build_runner` writes them with the config to
    ``WORK_DIR/resolved_config.py``).

    Args:
        config: path of the config file.
        work_dir: output folder; defaults to :func:`default_work_dir`.
        cfg_options: ``--cfg-options`` overrides (dotted keys).
        launcher: ``none``, ``pytorch`` (torchrun) or ``slurm``.
        amp: mixed precision: AmpOptimWrapper on CUDA, bfloat16 autocast without it.
        resume: ``'auto'`` (latest checkpoint in work_dir) or a checkpoint path.
        load_from: checkpoint to load weights from (no optimizer state).
        allow_base_mismatch: load a trainable-only checkpoint onto a different frozen base
            (sets ``model.allow_base_mismatch``; see mmvpeft/utils/fingerprint.py).
        allow_partial_load: load a checkpoint whose weights do not all match the model
            (sets ``model.allow_partial_load``).
    """
    from .config import resolve_config
    return resolve_config(config, work_dir=work_dir, cfg_options=cfg_options,
                          launcher=launcher, amp=amp, resume=resume, load_from=load_from,
                          allow_base_mismatch=allow_base_mismatch,
                          allow_partial_load=allow_partial_load)


def default_work_dir(config: str, launcher: str = 'none') -> str:
    """``work_dirs/{config name}`` for one process, ``work_dirs/{config name}_{N}proc`` for
    a launch of N > 1 processes (``WORLD_SIZE``, ``SLURM_NTASKS``), so a single- and a
    multi-process run of the same config never share (and overwrite) ``last_checkpoint``."""
    name = osp.splitext(osp.basename(config))[0]
    if launcher != 'none':
        world = int(os.environ.get('WORLD_SIZE') or os.environ.get('SLURM_NTASKS') or 1)
        if world > 1:
            name = f'{name}_{world}proc'
    return osp.join('work_dirs', name)


def setup_cpu_distributed(cfg: Config) -> None:
    """Let MMEngine's distributed path run on CPU.

    MMEngine's ``pytorch`` launcher calls ``torch.cuda.set_device`` and wraps the model in
    DDP with ``device_ids=[LOCAL_RANK]``; both fail without CUDA. We start the gloo process
    group ourselves (MMEngine then skips its own init) and give DDP ``device_ids=None``.
    """
    import torch.distributed as dist
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    if not dist.is_initialized():
        if cfg.launcher == 'slurm':
            # The slurm launcher sets RANK/WORLD_SIZE in the same way before init.
            os.environ.setdefault('RANK', os.environ.get('SLURM_PROCID', '0'))
            os.environ.setdefault('WORLD_SIZE', os.environ.get('SLURM_NTASKS', '1'))
            os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
            os.environ.setdefault('MASTER_PORT', '29500')
            if 'MASTER_ADDR' not in os.environ:
                raise RuntimeError('set MASTER_ADDR for a CPU slurm run (the first node name)')
        dist.init_process_group(backend='gloo')
    cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None,
                                 broadcast_buffers=False)


def destroy_distributed() -> None:
    """Tear down the process group before exit.

    MMEngine never destroys it; with gloo, its threads are then still joinable when the
    interpreter exits and a rank can abort ("terminate called without an active exception")
    after training finished, failing the whole torchrun job.
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def build_runner(cfg: Config) -> Runner:
    """``Runner.from_cfg``, honouring a ``runner_type`` in the config; a config from
    :func:`load_config` is then written, with the changes the resolve pass made, to
    ``WORK_DIR/resolved_config.py`` (main process only)."""
    from .config import config_changes, is_resolved, write_resolved_config
    resolved = is_resolved(cfg)
    if 'runner_type' in cfg:
        from mmengine.registry import RUNNERS
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    if resolved:
        path = write_resolved_config(cfg, runner.work_dir)
        if path:
            print_log(f'resolved config ({len(config_changes(cfg))} changes): {path}',
                      logger='current')
    return runner


def dump_metric_type(cfg: Config):
    """The prediction writer of ``--dump``: ``cfg.dump_metric`` when the config sets one,
    else the task model's ``dump_metric`` class attribute (``VideoQA``: ``QAAnswerDumper``,
    ``VideoCaptioner``: ``PredictionDumper``), else the moment_detr submission
    (``MomentSubmissionDumper``). Either a registered type name or a dict with ``type`` and
    the writer's other arguments."""
    if cfg.get('dump_metric'):
        return cfg.dump_metric
    from mmvpeft.registry import MODELS
    model_type = cfg.model.get('type', '') if 'model' in cfg else ''
    model_cls = MODELS.get(model_type) if isinstance(model_type, str) else model_type
    return getattr(model_cls, 'dump_metric', None) or 'MomentSubmissionDumper'


def add_submission_dump(cfg: Config, out_file: str) -> None:
    """Append the task's prediction writer (:func:`dump_metric_type`) to the test
    evaluator: a JSON-lines file of predictions."""
    if not out_file.endswith('.jsonl'):
        raise ValueError(f'--dump expects a .jsonl path, got {out_file}')
    writer = dump_metric_type(cfg)
    dumper = dict(writer if isinstance(writer, dict) else dict(type=writer), out_file=out_file)
    evaluator = cfg.test_evaluator
    if isinstance(evaluator, (list, tuple)):
        cfg.test_evaluator = list(evaluator) + [dumper]
    elif evaluator.get('type', 'Evaluator') == 'Evaluator' and 'metrics' in evaluator:
        metrics = evaluator['metrics']
        metrics = list(metrics) if isinstance(metrics, (list, tuple)) else [metrics]
        evaluator['metrics'] = metrics + [dumper]
    else:
        cfg.test_evaluator = [evaluator, dumper]
