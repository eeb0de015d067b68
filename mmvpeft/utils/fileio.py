"""File writes that never leave a half-written file, and JSON-lines reading with errors that
name the file and line. Every writer of the package goes through this module.

A write goes to a temporary file in the target's folder (same filesystem, so the final
``os.replace`` is atomic), is flushed and ``fsync``-ed, gets the mode the umask gives any new
file (``tempfile.mkstemp`` alone would leave it 0600), and only then replaces the target. If
the writer raises half-way, the temporary file is removed and an existing target is left as
it was: a reader (another rank, ``--resume auto``, a later run) sees the old file or the new
one, never a truncated one.
"""
import json
import os
import os.path as osp
import tempfile
from contextlib import contextmanager
from typing import IO, Any, Iterable, Iterator, Tuple, Type

import numpy as np


def umask_file_mode() -> int:
    """The mode ``open()`` gives a new file under the current umask (0o644 for 022)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """A temporary file name to write ``path`` through, for writers that take a file name
    (``cv2.VideoWriter``, ``np.savez``).

    The temporary name keeps ``path``'s extension (writers pick the format from it). On a
    normal exit the file is fsync-ed, given the umask's mode and moved onto ``path``; on an
    exception it is removed and ``path`` is untouched. Missing parent folders are created.

    Yields:
        str: the temporary path (an empty file exists there).
    """
    path = os.fspath(path)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base = osp.basename(path)
    fd, tmp = tempfile.mkstemp(prefix=f'.{base}.', suffix='.part' + osp.splitext(base)[1],
                               dir=folder)
    os.close(fd)
    try:
        yield tmp
        _fsync_file(tmp)
        os.chmod(tmp, umask_file_mode())
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


@contextmanager
def atomic_write(path: str, mode: str = 'w', encoding: str = 'utf-8') -> Iterator[IO]:
    """``open(path, mode)`` that replaces ``path`` only when the block finishes.

    Args:
        path: the target file; missing parent folders are created.
        mode: ``'w'`` (text, ``encoding``) or ``'wb'`` (bytes).
        encoding: text encoding (ignored for ``'wb'``).

    Yields:
        the open temporary file.

    Example:
        >>> with atomic_write('out/report.json') as f:
        ...     json.dump(report, f)
    """
    if mode not in ('w', 'wb'):
        raise ValueError(f'atomic_write mode must be "w" or "wb", got {mode!r}')
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=None if 'b' in mode else encoding) as f:
            yield f
            f.flush()


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, 'wb') as f:
        f.write(data)


def savez_atomic(path: str, **arrays: np.ndarray) -> None:
    """``np.savez(path, **arrays)`` atomically (``path`` is used as given, no ``.npz`` is
    appended)."""
    with atomic_write(path, 'wb') as f:
        np.savez(f, **arrays)


def write_json_atomic(path: str, obj: Any, indent: int = 1) -> None:
    """``json.dump(obj)`` to ``path`` atomically."""
    with atomic_write(path) as f:
        json.dump(obj, f, indent=indent)


def write_jsonl(path: str, records: Iterable[Any]) -> None:
    """One JSON document a line, written atomically."""
    with atomic_write(path) as f:
        for record in records:
            f.write(json.dumps(record) + '\n')


def iter_jsonl(path: str, error: Type[Exception] = ValueError) -> Iterator[Tuple[int, Any]]:
    """Yields ``(lineno, record)`` for each non-blank line of ``path`` (1-based lines).

    Args:
        path: the ``.jsonl`` file.
        error: the exception class raised on a line that does not parse (datasets pass
            ``AnnotationError``, the submission checker ``SubmissionError``).

    Raises:
        error: ``'{path}:{lineno}: invalid JSON (...)'`` on a line that does not parse.
    """
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise error(f'{path}:{lineno}: invalid JSON ({e})') from e
            yield lineno, record


def json_plain(value: Any) -> Any:
    """``value`` as it reads back from JSON (sorted keys, tuples as lists, other objects as
    ``str``): the form in which two cache keys or metadata records are compared."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))
