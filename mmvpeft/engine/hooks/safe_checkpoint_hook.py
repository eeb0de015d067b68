"""Checkpoints that load with a plain ``torch.load(path, weights_only=True)``, without
importing mmvpeft or allow-listing anything."""
import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer

from mmvpeft.registry import HOOKS

_TAG = '__history_buffer__'


def plain(obj):
    """``obj`` with numpy arrays as tensors, numpy scalars as Python numbers and dict
    subclasses (``ConfigDict``) as dicts: what torch's ``weights_only`` loader accepts by
    default."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj)) if obj.dtype != object else \
            [plain(x) for x in obj.tolist()]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) and not hasattr(obj, '_fields'):
        return type(obj)(plain(v) for v in obj)
    return obj


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Store the message hub's ``HistoryBuffer`` objects as plain arrays in checkpoints.

    ``HistoryBuffer.__getstate__`` pickles its class-level registry of statistic functions,
    which pickle encodes as ``getattr(HistoryBuffer, 'min')``. torch's ``weights_only``
    loader (the default since torch 2.6, and what MMEngine's resume uses) then refuses the
    file unless the ``getattr`` builtin is allow-listed, which would open attribute access on
    anything the file reaches. Saving the buffers' data instead (and rebuilding them before
    MMEngine restores the message hub) keeps the checkpoint to tensors, numpy arrays and a few
    allow-listed types. Its ``__setstate__`` re-registers those default statistics anyway.

    Everything else numpy (arrays, scalars) becomes tensors and Python numbers, and
    ``ConfigDict`` plain dicts, so ``torch.load(path, weights_only=True)`` reads the file in a
    process that never imported mmvpeft or MMEngine.
    """

    priority = 'VERY_LOW'  # after every other hook has added its state

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        scalars = checkpoint.get('message_hub', {}).get('log_scalars', {})
        for key, buf in list(scalars.items()):
            if isinstance(buf, HistoryBuffer):
                scalars[key] = {_TAG: True,
                                'log_history': np.asarray(buf._log_history).tolist(),
                                'count_history': np.asarray(buf._count_history).tolist(),
                                'max_length': int(buf.max_length)}
        for key in list(checkpoint):
            if key != 'state_dict':  # keeps its _metadata (frozen-base fingerprint)
                checkpoint[key] = plain(checkpoint[key])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        scalars = checkpoint.get('message_hub', {}).get('log_scalars', {})
        for key, value in list(scalars.items()):
            if isinstance(value, dict) and value.get(_TAG):
                scalars[key] = HistoryBuffer(list(value['log_history']),
                                             list(value['count_history']),
                                             value['max_length'])
