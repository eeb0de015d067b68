"""Library side of ``tools/train.py`` and ``tools/test.py``: config handling, CPU-aware
distributed setup and Runner construction, so the tools stay thin."""
import os
import os.path as osp
import re
from contextlib import contextmanager
from typing import Iterator, List, Optional

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


def _rank_from_env(cfg: Config) -> int:
    if cfg.get('launcher', 'none') == 'none':
        return 0
    return int(os.environ.get('RANK') or os.environ.get('SLURM_PROCID') or 0)


@contextmanager
def claim_work_dir(cfg: Config, share: bool = False, what: str = 'this run') -> Iterator[None]:
    """Hold the work dir for one run: :class:`~mmvpeft.utils.work_dir.WorkDirLock`, then
    remove the temporary files an interrupted write left there.

    All processes of one launch are one run: only rank 0 locks (and cleans up).

    Args:
        cfg: a resolved config (``work_dir``, ``launcher``).
        share: write into a work dir that another run may hold (``--share-work-dir``):
            no lock is taken or checked, and no file is removed.
        what: the tool, for the refusal message.

    Raises:
        WorkDirInUseError: another live run holds the work dir.
    """
    from mmvpeft.utils.work_dir import WorkDirLock, remove_stale_temp_files
    if _rank_from_env(cfg) != 0:
        yield
        return
    if share:
        print_log(f'work dir {cfg.work_dir}: shared (--share-work-dir), not locked',
                  logger='current')
        yield
        return
    with WorkDirLock(cfg.work_dir, what=what,
                     catch_sigterm=cfg.get('launcher', 'none') == 'none'):
        remove_stale_temp_files(cfg.work_dir)
        yield


def _checkpoint_number(name: str) -> Optional[int]:
    match = re.fullmatch(r'(?:epoch|iter)_(\d+)\.pth', name)
    return int(match.group(1)) if match else None


def _resume_command(config: str, work_dir: str, path: str) -> str:
    """This run's ``tools/train.py`` command line with ``--resume PATH`` in place of an
    automatic resume (a generic line when not run from ``tools/train.py``)."""
    import shlex
    import sys
    argv = list(sys.argv)
    if osp.basename(argv[0]) != 'train.py':
        return shlex.join(['python', 'tools/train.py', config, '--work-dir', work_dir,
                           '--resume', path]) + '   (with this run\'s other options)'
    args, i = [], 1
    while i < len(argv):
        if argv[i] == '--resume':
            if i + 1 < len(argv) and not argv[i + 1].startswith('-'):
                i += 1  # its value (auto)
        elif not argv[i].startswith('--resume='):
            args.append(argv[i])
        i += 1
    if not any(a == '--work-dir' or a.startswith('--work-dir=') for a in args):
        args += ['--work-dir', work_dir]
    return shlex.join(['python', argv[0], *args, '--resume', path])


def check_auto_resume(work_dir: str, config: str) -> Optional[str]:
    """The checkpoint ``--resume`` (auto) will load, checked before anything is built.

    MMEngine resumes from the file named in ``WORK_DIR/last_checkpoint``; a truncated or
    empty one would fail deep in ``torch.load``. Here it is an error naming the file and
    the newest readable ``epoch_N.pth`` / ``iter_N.pth`` beside it, with the command that
    resumes from that one.

    Returns:
        The latest checkpoint's path, None when there is nothing to resume (a fresh start).

    Raises:
        OSError: the latest checkpoint is missing, empty or truncated.
    """
    from mmengine.runner import find_latest_checkpoint

    from mmvpeft.utils.checkpoint import check_checkpoint_file
    latest = find_latest_checkpoint(work_dir)
    if latest is None:
        return None
    try:
        check_checkpoint_file(latest, 'checkpoint')
    except OSError as e:
        older: List[str] = sorted(
            (n for n in os.listdir(work_dir) if _checkpoint_number(n) is not None
             and osp.abspath(osp.join(work_dir, n)) != osp.abspath(latest)),
            key=_checkpoint_number, reverse=True)
        readable = None
        for name in older:
            try:
                check_checkpoint_file(osp.join(work_dir, name))
                readable = osp.join(work_dir, name)
                break
            except OSError:
                continue
        offer = (f'The newest readable checkpoint there is {readable}; resume from it with\n'
                 f'    {_resume_command(config, work_dir, readable)}'
                 if readable else f'No other readable epoch_N.pth / iter_N.pth is in {work_dir}'
                 '; start again without --resume (in another --work-dir, or after moving '
                 'the broken file away)')
        raise type(e)(f'--resume: the latest checkpoint {latest} (named in '
                      f'{osp.join(work_dir, "last_checkpoint")}) cannot be read: {e}.\n'
                      f'{offer}') from e
    return latest


def configure_cpu_threads(cfg: Config, threads: Optional[int] = None) -> Optional[int]:
    """Choose the main process's torch thread count on CPU, so it does not oversubscribe
    the cores with the loader workers (and the other processes of a launch).

    On a machine without CUDA, unless ``threads`` or ``OMP_NUM_THREADS`` is given: half the
    cores this process may use (its share of a multi-process launch) after one core per
    training loader worker, at least 1. OpenMP threads wait for each other at every
    operation, so when any other work takes a core (a loader worker, the video decoder,
    another process) all of them stall; the tiny demo models lose far more to that than
    they gain from a second thread. Loader workers run one thread each (PyTorch sets that
    in every worker). One log line says what was chosen.

    Args:
        cfg: a resolved config (``train_dataloader.num_workers``, ``launcher``).
        threads: an explicit count (``--cpu-threads``), used as given.

    Returns:
        The thread count set, None where nothing was changed (CUDA, or OMP_NUM_THREADS).
    """
    import torch
    if torch.cuda.is_available() and threads is None:
        return None
    if threads is None and os.environ.get('OMP_NUM_THREADS'):
        print_log(f'CPU threads: {torch.get_num_threads()} in the main process '
                  f'(OMP_NUM_THREADS={os.environ["OMP_NUM_THREADS"]})', logger='current')
        return None
    if threads is not None:
        if threads < 1:
            raise ValueError(f'--cpu-threads must be at least 1, got {threads}')
        why = '--cpu-threads'
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') \
            else (os.cpu_count() or 1)
        procs = 1
        if cfg.get('launcher', 'none') != 'none':
            procs = int(os.environ.get('LOCAL_WORLD_SIZE') or os.environ.get('WORLD_SIZE')
                        or os.environ.get('SLURM_NTASKS_PER_NODE') or 1)
        loader = cfg.get('train_dataloader') or cfg.get('test_dataloader') or {}
        workers = int(loader.get('num_workers', 0) or 0)
        threads = max(1, (cores // procs - workers) // 2)
        why = (f'{cores} cores{f" / {procs} processes" if procs > 1 else ""}, {workers} '
               'loader workers of 1 thread each; set OMP_NUM_THREADS or --cpu-threads to '
               'choose')
    torch.set_num_threads(threads)
    print_log(f'CPU threads: {threads} in the main process ({why})', logger='current')
    return threads


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
    from mmvpeft.engine.hooks import ResumeCheckHook
    runner.register_hook(ResumeCheckHook())  # optimizer type in meta; refused on resume
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


def append_test_metric(cfg: Config, metric: dict) -> None:
    """Add ``metric`` (a metric config) after the test evaluator's metrics, whichever form
    ``cfg.test_evaluator`` takes: one metric, a list, or an ``Evaluator`` with ``metrics``."""
    evaluator = cfg.test_evaluator
    if isinstance(evaluator, (list, tuple)):
        cfg.test_evaluator = list(evaluator) + [metric]
    elif evaluator.get('type', 'Evaluator') == 'Evaluator' and 'metrics' in evaluator:
        metrics = evaluator['metrics']
        metrics = list(metrics) if isinstance(metrics, (list, tuple)) else [metrics]
        evaluator['metrics'] = metrics + [metric]
    else:
        cfg.test_evaluator = [evaluator, metric]


def add_submission_dump(cfg: Config, out_file: str) -> None:
    """Append the task's prediction writer (:func:`dump_metric_type`) to the test
    evaluator: a JSON-lines file of predictions."""
    if not out_file.endswith('.jsonl'):
        raise ValueError(f'--dump expects a .jsonl path, got {out_file}')
    writer = dump_metric_type(cfg)
    append_test_metric(
        cfg, dict(writer if isinstance(writer, dict) else dict(type=writer), out_file=out_file))
