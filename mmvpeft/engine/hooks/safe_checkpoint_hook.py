"""Checkpoints that load with ``torch.load(weights_only=True)``."""
import numpy as np
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer

from mmvpeft.registry import HOOKS

_TAG = '__history_buffer__'


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
    """

    priority = 'VERY_LOW'  # after every other hook has added its state

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        scalars = checkpoint.get('message_hub', {}).get('log_scalars', {})
        for key, buf in list(scalars.items()):
            if isinstance(buf, HistoryBuffer):
                scalars[key] = {_TAG: True, 'log_history': np.asarray(buf._log_history),
                                'count_history': np.asarray(buf._count_history),
                                'max_length': int(buf.max_length)}

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        scalars = checkpoint.get('message_hub', {}).get('log_scalars', {})
        for key, value in list(scalars.items()):
            if isinstance(value, dict) and value.get(_TAG):
                scalars[key] = HistoryBuffer(list(value['log_history']),
                                             list(value['count_history']),
                                             value['max_length'])
