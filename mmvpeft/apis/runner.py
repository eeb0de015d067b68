"""Library side of ``tools/train.py`` and ``tools/test.py``: config handling, CPU-aware
distributed setup and Runner construction, so the tools stay thin."""
import copy
import os
import os.path as osp
import sys
import uuid
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmvpeft.utils.checkpoint import check_checkpoint_file
from .config_checks import (apply_knob_options, check_hook_args, check_top_level_keys,
                            read_config, scale_schedule_to_epochs)


def load_config(config: str, work_dir: Optional[str] = None, cfg_options: Optional[dict] = None,
                launcher: str = 'none', amp: bool = False, resume: Optional[str] = None,
                load_from: Optional[str] = None, allow_base_mismatch: bool = False,
                allow_partial_load: bool = False) -> Config:
    """Read a config and apply the command-line conventions of MMEngine tools.

    Args:
        config: path of the config file.
        work_dir: output folder; defaults to :func:`default_work_dir`.
        cfg_options: ``--cfg-options`` overrides (dotted keys).
        launcher: ``none``, ``pytorch`` (torchrun) or ``slurm``.
        amp: mixed precision (needs a CUDA device).
        resume: ``'auto'`` (latest checkpoint in work_dir) or a checkpoint path.
        load_from: checkpoint to load weights from (no optimizer state).
        allow_base_mismatch: load a trainable-only checkpoint onto a different frozen base
            (sets ``model.allow_base_mismatch``; see mmvpeft/utils/fingerprint.py).
        allow_partial_load: load a checkpoint whose weights do not all match the model
            (sets ``model.allow_partial_load``).
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file not found: {config}')
    # custom_imports finds a plugin module that sits next to the config (appended, so it
    # never shadows an installed module).
    folder = osp.dirname(osp.abspath(config))
    if folder not in sys.path:
        sys.path.append(folder)
    cfg = read_config(config)
    if cfg_options:
        before = copy.deepcopy(cfg)
        cfg.merge_from_dict(cfg_options)
        apply_knob_options(cfg, before, cfg_options)
    # Checked before anything is built, so a typo fails now and not after an epoch.
    check_top_level_keys(cfg, config)
    check_hook_args(cfg)
    scale_schedule_to_epochs(cfg)
    cfg.launcher = launcher
    if cfg.get('prefix_cache'):  # train / test from a frozen-prefix cache
        from .prefix_cache import use_prefix_cache
        use_prefix_cache(cfg, cfg.prefix_cache)
    # Set only when asked, so model types without these arguments still build.
    if allow_base_mismatch:
        cfg.model.allow_base_mismatch = True
    if allow_partial_load:
        cfg.model.allow_partial_load = True
    cfg.work_dir = work_dir or cfg.get('work_dir') or default_work_dir(config, launcher)
    # A unique name: MMEngine keys its logger by experiment_name, and two runners built in
    # the same second in one process would otherwise share (and close) one logger.
    cfg.experiment_name = f'{osp.splitext(osp.basename(config))[0]}_{uuid.uuid4().hex[:8]}'
    if amp:
        if not torch.cuda.is_available():
            raise RuntimeError('--amp needs a CUDA device (MMEngine AmpOptimWrapper); this '
                               'machine has none. Run without --amp on CPU.')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    subset = (cfg.get('train_dataloader') or {}).get('dataset', {}).get('train_subset')
    if subset and not subset.get('record'):  # low-resource runs record their subset
        subset['record'] = osp.join(cfg.work_dir, 'train_subset.json')
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif resume:
        check_checkpoint_file(resume, '--resume checkpoint')
        cfg.resume, cfg.load_from = True, resume
    if load_from:
        check_checkpoint_file(load_from)
        cfg.load_from = load_from
    if launcher != 'none' and not torch.cuda.is_available():
        setup_cpu_distributed(cfg)
    return cfg


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
    """``Runner.from_cfg``, honouring a ``runner_type`` in the config."""
    if 'runner_type' in cfg:
        from mmengine.registry import RUNNERS
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


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
