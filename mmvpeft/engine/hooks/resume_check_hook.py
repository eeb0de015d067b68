"""Resume only into the optimizer a checkpoint was saved with."""
import os.path as osp
from functools import lru_cache
from typing import Dict, List, Optional, Union

import torch
from mmengine.hooks import Hook

from mmvpeft.registry import HOOKS

# Param-group entries that do not tell optimizer types apart: shared ones, and flags that
# torch versions add (a checkpoint of an older torch must still resume).
_NOT_SETTINGS = {'params', 'initial_lr', 'lr', 'weight_decay', 'param_names', 'foreach',
                 'maximize', 'differentiable', 'fused', 'capturable', 'decoupled_weight_decay'}


class OptimizerMismatchError(RuntimeError):
    """A checkpoint's optimizer state belongs to another optimizer type than the run's."""


def optimizer_types(optim_wrapper) -> Union[str, Dict[str, str], None]:
    """``'AdamW'``, or ``{name: type}`` for an ``OptimWrapperDict``; None if not built."""
    if hasattr(optim_wrapper, 'optim_wrappers'):  # OptimWrapperDict
        return {k: type(w.optimizer).__name__ for k, w in optim_wrapper.optim_wrappers.items()}
    optimizer = getattr(optim_wrapper, 'optimizer', None)
    return type(optimizer).__name__ if isinstance(optimizer, torch.optim.Optimizer) else None


@lru_cache(maxsize=1)
def _settings_by_type() -> Dict[str, frozenset]:
    """The param-group settings of each torch optimizer type."""
    out = {}
    param = torch.nn.Parameter(torch.zeros(1))
    for name in dir(torch.optim):
        cls = getattr(torch.optim, name)
        if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer) \
                and cls is not torch.optim.Optimizer:
            try:
                out[name] = frozenset(cls([param], lr=0.1).param_groups[0]) - _NOT_SETTINGS
            except Exception:  # noqa: BLE001 - types that need other arguments
                continue
    return out


def _guess(settings: frozenset) -> str:
    names = [n for n, s in _settings_by_type().items() if s == settings]
    return ' or '.join(sorted(names)) if names else \
        f'an optimizer with settings {sorted(settings)}'


def _state_settings(state: dict) -> Optional[frozenset]:
    groups = state.get('param_groups') if isinstance(state, dict) else None
    return frozenset(groups[0]) - _NOT_SETTINGS if groups else None


def check_optimizer_state(checkpoint: dict, optim_wrapper, path: str = 'the checkpoint') -> None:
    """Refuse to resume optimizer state saved by another optimizer type.

    torch loads any optimizer's state into any other without a word: AdamW resumed from an
    SGD checkpoint fails at its first step with ``KeyError: 'step'``, SGD resumed from an
    AdamW one silently drops the momentum. The saved type is ``meta.optimizer_type``
    (written by :class:`ResumeCheckHook`); for older checkpoints it is inferred from the
    settings stored in the param groups (``betas``, ``momentum``, ...).

    Raises:
        OptimizerMismatchError: naming both optimizers, the checkpoint and the options.
    """
    current = optimizer_types(optim_wrapper)
    state = checkpoint.get('optimizer')
    if current is None or not isinstance(state, dict):
        return
    saved = (checkpoint.get('meta') or {}).get('optimizer_type')
    pairs: List[tuple] = []
    if isinstance(current, dict):
        for name, kind in current.items():
            pairs.append((name, (saved or {}).get(name) if isinstance(saved, dict) else None,
                          kind, state.get(name, {}),
                          optim_wrapper.optim_wrappers[name].optimizer))
    else:
        pairs.append(('', saved if isinstance(saved, str) else None, current, state,
                      optim_wrapper.optimizer))
    for name, saved_kind, kind, sub_state, optimizer in pairs:
        if saved_kind is not None:
            if saved_kind == kind:
                continue
        else:
            settings = _state_settings(sub_state)
            mine = frozenset(optimizer.param_groups[0]) - _NOT_SETTINGS
            if settings is None or settings == mine:
                continue
            saved_kind = _guess(settings)
        where = f' (optimizer "{name}")' if name else ''
        key = f'optim_wrapper.{name + "." if name else ""}optimizer.type'
        first = saved_kind.split(' or ')[0]
        raise OptimizerMismatchError(
            f'cannot resume {path}{where}: its optimizer state was saved by {saved_kind}, and '
            f'this run builds {kind} ({key}); one optimizer cannot continue from the '
            f"other's state. Resume with the checkpoint's optimizer (--cfg-options "
            f'{key}={first} ...), or start from its weights alone with --load-from {path} '
            '(a fresh optimizer state)')


@HOOKS.register_module()
class ResumeCheckHook(Hook):
    """Writes the optimizer type into every checkpoint's ``meta`` and, when a run resumes,
    refuses a checkpoint of another optimizer type (:func:`check_optimizer_state`).
    :func:`mmvpeft.apis.build_runner` adds it to every runner it builds."""

    priority = 'VERY_HIGH'  # before SafeCheckpointHook turns meta into plain types

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        kind = optimizer_types(runner.optim_wrapper)
        if kind is not None:
            checkpoint.setdefault('meta', {})['optimizer_type'] = kind

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False):
            return  # load_from: weights only, the optimizer state is not used
        path = getattr(runner, '_load_from', None)
        if not path:
            from mmengine.runner import find_latest_checkpoint
            path = find_latest_checkpoint(runner.work_dir) or osp.join(runner.work_dir, '?')
        check_optimizer_state(checkpoint, runner.optim_wrapper, path)
