"""One visible pass from a config file to the config a run uses.

:func:`resolve_config` is the only place that changes a config after it is read
(``tools/train.py``, ``tools/test.py`` and :func:`~mmvpeft.apis.runner.load_config` go through
it). Its steps, in order:

1. ``knob``: a knob (``data_root``, ``clip_pretrained``, ...) set in a child config reaches
   the fields of its ``_base_`` files that used it;
2. ``--cfg-options``: the command-line overrides, then ``knob`` again for knobs set there;
3. checks (top-level key typos, hook arguments): change nothing, fail early;
4. ``schedule``: by-epoch LR phases follow ``train_cfg.max_epochs``;
5. ``prefix_cache``: loaders and towers switch to a frozen-prefix cache;
6. ``runtime``: launcher, work_dir, experiment name, amp, resume / load_from, checkpoint
   loading flags;
7. ``train_subset``: a low-resource run records its subset in the work dir;
8. ``distributed``: CPU (gloo) distributed settings.

Each step's changes are found by diffing the config before and after it
(:func:`config_diff`), logged one line each (``train_cfg.max_epochs: 10 -> 3
[--cfg-options]``) and kept with the config, and :func:`write_resolved_config` writes
``WORK_DIR/resolved_config.py`` (a header listing them, then the config as it runs) when the
runner is built, on the main process. Nobody has to read code to see what will run.
"""
import copy
import os
import os.path as osp
import sys
import uuid
from typing import Any, Callable, List, NamedTuple, Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.logging import print_log

from mmvpeft.utils.checkpoint import check_checkpoint_file
from mmvpeft.utils.fileio import atomic_write
from .config_checks import (apply_knob_options, check_hook_args, check_top_level_keys,
                            read_config, scale_schedule_to_epochs)

#: File name of the resolved config in the work dir.
RESOLVED_CONFIG = 'resolved_config.py'
_CHANGES_ATTR = '_mmvpeft_config_changes'
_SOURCE_ATTR = '_mmvpeft_config_source'


class _Unset:
    """A key absent on one side of a diff."""

    def __repr__(self) -> str:
        return '<unset>'


UNSET = _Unset()


class ConfigChange(NamedTuple):
    """One change a resolve step made: ``key`` (dotted, ``[i]`` for list items) went from
    ``before`` to ``after`` (:data:`UNSET` when absent)."""
    step: str
    key: str
    before: Any
    after: Any

    def __str__(self) -> str:
        return f'{self.key}: {_short(self.before)} -> {_short(self.after)}  [{self.step}]'


def _short(value: Any, limit: int = 100) -> str:
    """A one-line form: transform lists by their types, long values cut."""
    if isinstance(value, dict) and 'type' in value:
        text = f'dict(type={value["type"]!r}, ...)' if len(value) > 1 else repr(dict(value))
    elif (isinstance(value, (list, tuple)) and value
          and all(isinstance(v, dict) and 'type' in v for v in value)):
        text = '[' + ', '.join(str(v['type']) for v in value) + ']'
    else:
        text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + '...'


def config_diff(before: Any, after: Any, key: str = '') -> List[Tuple[str, Any, Any]]:
    """``(dotted key, before, after)`` of every leaf that differs, in the order of ``after``.

    Dicts are compared key by key and lists of equal length item by item (``a.b[0].c``);
    lists of different lengths, and values of different kinds, are one change.
    """
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for k in list(after) + [k for k in before if k not in after]:
            sub = f'{key}.{k}' if key else str(k)
            out += config_diff(before.get(k, UNSET), after.get(k, UNSET), sub)
        return out
    if (isinstance(before, (list, tuple)) and isinstance(after, (list, tuple))
            and len(before) == len(after)):
        out = []
        for i, (b, a) in enumerate(zip(before, after)):
            out += config_diff(b, a, f'{key}[{i}]')
        return out
    if before is UNSET or after is UNSET or before != after:
        return [(key, before, after)]
    return []


def _snapshot(cfg: Config) -> dict:
    return copy.deepcopy(cfg.to_dict())


def is_resolved(cfg: Config) -> bool:
    """Whether ``cfg`` came from :func:`resolve_config`."""
    return hasattr(cfg, _CHANGES_ATTR)


def config_changes(cfg: Config) -> List[ConfigChange]:
    """The changes :func:`resolve_config` made to ``cfg`` (empty for any other config)."""
    return list(getattr(cfg, _CHANGES_ATTR, None) or [])


def resolve_config(config: str, work_dir: Optional[str] = None,
                   cfg_options: Optional[dict] = None, launcher: str = 'none',
                   amp: bool = False, resume: Optional[str] = None,
                   load_from: Optional[str] = None, allow_base_mismatch: bool = False,
                   allow_partial_load: bool = False, log: bool = True) -> Config:
    """Read ``config`` and apply every change a run makes to it, recording each.

    Args:
        config: Path of the config file.
        work_dir: Output folder; defaults to ``cfg.work_dir`` or
            :func:`~mmvpeft.apis.runner.default_work_dir`.
        cfg_options: ``--cfg-options`` overrides (dotted keys).
        launcher: ``none``, ``pytorch`` (torchrun) or ``slurm``.
        amp: Mixed precision (needs a CUDA device).
        resume: ``'auto'`` (latest checkpoint in work_dir) or a checkpoint path.
        load_from: Checkpoint to load weights from (no optimizer state).
        allow_base_mismatch: Load a trainable-only checkpoint onto another frozen base.
        allow_partial_load: Load a checkpoint whose weights do not all match the model.
        log: Log each change (one line each) through MMEngine's current logger.

    Returns:
        The resolved config; :func:`config_changes` gives the list of
        :class:`ConfigChange` made, in order.

    Raises:
        FileNotFoundError: the config or a checkpoint is missing.
        KeyError / TypeError / SyntaxError: a misspelt key, hook argument or syntax error,
            naming the file and key.
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file not found: {config}')
    # custom_imports finds a plugin module that sits next to the config (appended, so it
    # never shadows an installed module).
    folder = osp.dirname(osp.abspath(config))
    if folder not in sys.path:
        sys.path.append(folder)
    cfg = read_config(config)
    changes: List[ConfigChange] = []

    def record(step: str, before: dict) -> None:
        new = [ConfigChange(step, k, b, a) for k, b, a in config_diff(before, _snapshot(cfg))]
        changes.extend(new)
        if log:
            for change in new:
                print_log(f'config: {change}', logger='current')

    def step(name: str, fn: Callable[[], Any]) -> None:
        before = _snapshot(cfg)
        fn()
        record(name, before)

    # 1. Knobs of a child config, against the config as MMEngine alone reads it.
    record('knob', _snapshot(Config.fromfile(config)))
    # 2. Command-line overrides, then the knobs they set.
    if cfg_options:
        before = copy.deepcopy(cfg)
        step('--cfg-options', lambda: cfg.merge_from_dict(cfg_options))
        step('knob', lambda: apply_knob_options(cfg, before, cfg_options))
    # 3. Checked before anything is built, so a typo fails now and not after an epoch.
    check_top_level_keys(cfg, config)
    check_hook_args(cfg)
    # 4.
    step('schedule', lambda: scale_schedule_to_epochs(cfg))
    # 5.
    step('runtime', lambda: setattr(cfg, 'launcher', launcher))
    if cfg.get('prefix_cache'):  # train / test from a frozen-prefix cache
        from .prefix_cache import use_prefix_cache
        step('prefix_cache', lambda: use_prefix_cache(cfg, cfg.prefix_cache))
    # 6.
    step('runtime', lambda: _runtime(cfg, config, work_dir, launcher, amp, resume, load_from,
                                     allow_base_mismatch, allow_partial_load))
    # 7.
    step('train_subset', lambda: _record_train_subset(cfg))
    # 8.
    if launcher != 'none' and not torch.cuda.is_available():
        from .runner import setup_cpu_distributed
        step('distributed', lambda: setup_cpu_distributed(cfg))
    object.__setattr__(cfg, _CHANGES_ATTR, changes)
    object.__setattr__(cfg, _SOURCE_ATTR, osp.abspath(config))
    # MMEngine formats the config text with yapf each time it is asked for (the log, every
    # checkpoint's meta, every adapter file): ~0.15 s a call, a third of a demo training's
    # time. Only resolved_config.py, the copy a user reads, is formatted.
    object.__setattr__(cfg, '_format_python_code', False)
    return cfg


def _runtime(cfg: Config, config: str, work_dir: Optional[str], launcher: str, amp: bool,
             resume: Optional[str], load_from: Optional[str], allow_base_mismatch: bool,
             allow_partial_load: bool) -> None:
    from .runner import default_work_dir

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
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif resume:
        check_checkpoint_file(resume, '--resume checkpoint')
        cfg.resume, cfg.load_from = True, resume
    if load_from:
        check_checkpoint_file(load_from)
        cfg.load_from = load_from


def _record_train_subset(cfg: Config) -> None:
    subset = (cfg.get('train_dataloader') or {}).get('dataset', {}).get('train_subset')
    if subset and not subset.get('record'):  # low-resource runs record their subset
        subset['record'] = osp.join(cfg.work_dir, 'train_subset.json')


def resolved_config_text(cfg: Config) -> str:
    """``cfg`` as a config file, opened by a comment listing the resolve step's changes."""
    changes = config_changes(cfg)
    source = getattr(cfg, _SOURCE_ATTR, None)
    lines = [f'# The config of this run: {source or "(not from a file)"}, resolved by',
             '# mmvpeft.apis.config.resolve_config. It runs as it is, e.g.',
             f'#   python tools/train.py {osp.join(cfg.get("work_dir", "."), RESOLVED_CONFIG)}',
             f'# Changes made after reading the file ({len(changes)}):']
    lines += [f'#   {change}' for change in changes] or ['#   (none)']
    formatted = copy.copy(cfg)  # resolve_config turns yapf off for every other copy
    object.__setattr__(formatted, '_format_python_code', True)
    return '\n'.join(lines) + '\n' + formatted.pretty_text + '\n'


def write_resolved_config(cfg: Config, work_dir: Optional[str] = None) -> Optional[str]:
    """Write :func:`resolved_config_text` to ``WORK_DIR/resolved_config.py`` atomically, on
    the main process only; returns its path (None on other ranks)."""
    from mmengine.dist import is_main_process
    if not is_main_process():
        return None
    work_dir = work_dir or cfg.work_dir
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, RESOLVED_CONFIG)
    with atomic_write(path) as f:
        f.write(resolved_config_text(cfg))
    return path
