"""Checkpoint I/O fixes for MMEngine 0.10.7 on torch >= 2.6.

1. ``torch.load`` defaults to ``weights_only=True`` since torch 2.6, and MMEngine's resume and
   ``load_from`` then fail on the non-tensor objects it stores (``HistoryBuffer`` in the
   message hub, numpy scalars and arrays, ``ConfigDict``). Rather than loading with
   ``weights_only=False`` (which executes arbitrary pickled code from any file), we allow-list
   exactly those types.
2. MMEngine writes checkpoints with a plain ``open(path, 'wb')``: a crash mid-write leaves a
   truncated file under the final name, which ``--resume auto`` would then pick. Local writes
   go through a temporary file and an atomic ``os.replace`` instead.
"""
import os
import os.path as osp
import tempfile

import numpy as np
import torch
from mmengine.fileio.backends import LocalBackend, register_backend


def _numpy_safe_globals() -> list:
    try:  # numpy >= 2 keeps the reconstructors in numpy._core
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    kinds = [np.dtype, np.ndarray, _reconstruct, scalar]
    # Concrete dtype classes (numpy >= 1.25 pickles dtypes as e.g. numpy.dtypes.Float64DType).
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        kinds += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')]
    return kinds


def allow_mmengine_checkpoint_types() -> None:
    """Allow-list the non-tensor types MMEngine checkpoints contain for ``weights_only`` loads."""
    from mmengine.config import ConfigDict
    from mmengine.logging import HistoryBuffer
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:  # torch < 2.4 loads everything anyway
        return
    add([HistoryBuffer, ConfigDict, *_numpy_safe_globals()])


class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend, writing through a temporary file + ``os.replace``."""

    def put(self, obj: bytes, filepath) -> None:
        filepath = str(filepath)
        folder = osp.dirname(osp.abspath(filepath))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix='.' + osp.basename(filepath) + '.', dir=folder)
        try:
            with os.fdopen(fd, 'wb') as f:
                f.write(obj)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, filepath)
        except BaseException:
            if osp.exists(tmp):
                os.remove(tmp)
            raise

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        self.put(obj.encode(encoding), filepath)


def use_atomic_checkpoint_writes() -> None:
    """Make MMEngine's local backend (used by ``CheckpointHook``) write atomically."""
    # Plain paths resolve through the '' prefix, so it must be remapped too.
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
