"""Checkpoint I/O fixes for MMEngine 0.10.7 on torch >= 2.6.

1. ``torch.load`` defaults to ``weights_only=True`` since torch 2.6, and MMEngine's resume and
   ``load_from`` then fail on the non-tensor objects it stores (``HistoryBuffer`` in the
   message hub, numpy scalars and arrays, ``ConfigDict``). Rather than loading with
   ``weights_only=False`` (which executes arbitrary pickled code from any file), we allow-list
   exactly those types.
2. MMEngine writes checkpoints with a plain ``open(path, 'wb')``: a crash mid-write leaves a
   truncated file under the final name, which ``--resume auto`` would then pick. Local writes
   go through :mod:`mmvpeft.utils.fileio` instead (temporary file, fsync, atomic
   ``os.replace``, the mode the umask gives any new file).
"""
import os.path as osp

import numpy as np
import torch
from mmengine.fileio.backends import LocalBackend, register_backend

from .fileio import write_bytes_atomic


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
    """MMEngine's local file backend, writing through :func:`~mmvpeft.utils.fileio.atomic_write`
    (temporary file, fsync, ``os.replace``)."""

    def put(self, obj: bytes, filepath) -> None:
        write_bytes_atomic(str(filepath), obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        self.put(obj.encode(encoding), filepath)


def use_atomic_checkpoint_writes() -> None:
    """Make MMEngine's local backend (used by ``CheckpointHook``) write atomically."""
    # Plain paths resolve through the '' prefix, so it must be remapped too.
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')


def check_checkpoint_file(path: str, what: str = 'checkpoint') -> None:
    """Fail early, naming the file, on a checkpoint that cannot be a ``torch.save`` file.

    ``torch.load`` of a zero-byte or truncated file raises a bare ``EOFError`` or a zip error
    deep in the loader. A zero-byte file, or a zip archive (the ``torch.save`` format since
    torch 1.6) whose directory at its end is missing, is reported here instead.

    Raises:
        FileNotFoundError: no such file. OSError: empty or truncated.
    """
    import zipfile
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path}')
    size = osp.getsize(path)
    if size == 0:
        raise OSError(f'{what} {path} is empty (0 bytes): an interrupted copy or download? '
                      'Expected a torch.save file (a zip archive with the state dict)')
    with open(path, 'rb') as f:
        zip_magic = f.read(4) == b'PK\x03\x04'
    if zip_magic:
        try:
            with zipfile.ZipFile(path):
                pass
        except zipfile.BadZipFile as e:
            raise OSError(f'{what} {path} is truncated or corrupt ({size} bytes; {e}): '
                          'copy or download it again') from e
