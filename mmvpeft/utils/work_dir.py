"""One run per work dir, and what an interrupted run left behind.

:class:`WorkDirLock` is a lock file in the work dir (``run.lock``: JSON with the holder's
PID, host, start time and command line). A second run on the same work dir is refused with
:class:`WorkDirInUseError`, naming the holder. A lock whose holder is dead on this host is
stale: it is taken over with a warning. The lock is released when the run ends: normally,
by an exception, Ctrl-C, or SIGTERM (turned into ``SystemExit`` while the lock is held, so
every ``finally`` block runs, including the temporary-file cleanup of atomic writes).

:func:`remove_stale_temp_files` removes the hidden temporary files of
:func:`mmvpeft.utils.fileio.atomic_path` (``.NAME.XXXXXXXX.part.EXT``) that a killed run
left in a folder; only that pattern, never other files.
"""
import json
import os
import os.path as osp
import re
import signal
import socket
import sys
import threading
import time
from typing import List, Optional

from mmengine.logging import print_log

#: Name of the lock file in the work dir.
LOCK_NAME = 'run.lock'

# atomic_path's temporary names: '.' + target name + '.' + mkstemp's 8 random characters +
# '.part' + the target's extension.
_TEMP_RE = re.compile(r'^\.(?P<name>.+)\.[a-z0-9_]{8}\.part(?P<ext>\.[^./]*)?$')


class WorkDirInUseError(RuntimeError):
    """Another live run holds the work dir's lock."""


def _process_start(pid: int) -> Optional[str]:
    """The kernel's start time of ``pid`` (field 22 of ``/proc/PID/stat``), which tells a
    live holder from a new process that reuses its PID; None where ``/proc`` is missing."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, start: Optional[str]) -> bool:
    """Whether ``pid`` runs on this host and is the process that wrote the lock."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    now = _process_start(pid)
    return start is None or now is None or now == start


def read_lock(path: str) -> Optional[dict]:
    """The holder recorded in a lock file, None if it has gone; ``{}`` if unreadable."""
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def describe_holder(holder: dict) -> str:
    """``PID 123 on host node1 (started 2026-12-05 08:30:00 UTC: python tools/train.py ...)``"""
    started = holder.get('start')
    when = time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(started)) if started else '?'
    cmd = holder.get('command')
    return (f'PID {holder.get("pid", "?")} on host {holder.get("host", "?")} '
            f'(started {when}{": " + cmd if cmd else ""})')


class WorkDirLock:
    """A lock file in ``work_dir`` held for the length of one run.

    Args:
        work_dir: the run's output folder (created if missing).
        what: how the refusal names the tool (``tools/train.py``).
        catch_sigterm: turn SIGTERM into ``SystemExit`` while held (so the lock and
            temporary files go). Off for multi-process launches, where the exit path waits
            at a barrier for ranks that the launcher is killing too; their lock is taken
            over as stale by the next run.

    Example:
        >>> with WorkDirLock('work_dirs/read_demo'):
        ...     runner.train()
    """

    def __init__(self, work_dir: str, what: str = 'this run', catch_sigterm: bool = True):
        self.work_dir = work_dir
        self.catch_sigterm = catch_sigterm
        self.path = osp.join(work_dir, LOCK_NAME)
        self.what = what
        self.record: Optional[dict] = None
        self._old_sigterm = None

    def acquire(self) -> 'WorkDirLock':
        """Take the lock, or take over a stale one.

        Raises:
            WorkDirInUseError: a live run holds it (its PID, host and command in the
                message).
        """
        os.makedirs(self.work_dir, exist_ok=True)
        pid = os.getpid()
        self.record = dict(pid=pid, host=socket.gethostname(), start=time.time(),
                           proc_start=_process_start(pid), command=' '.join(sys.argv))
        tmp = f'{self.path}.{pid}.tmp'
        with open(tmp, 'w', encoding='utf-8') as f:
            json.dump(self.record, f)
        try:
            for _ in range(5):
                try:
                    # link() is atomic and fails if the name exists: the lock appears with
                    # its content complete, so a reader never sees a half-written holder.
                    os.link(tmp, self.path)
                    break
                except FileExistsError:
                    self._stale_or_refuse()
            else:
                raise WorkDirInUseError(f'{self.path}: could not take the lock (it keeps '
                                        'reappearing; another run is starting here)')
        finally:
            os.remove(tmp)
        if self.catch_sigterm:
            self._catch_sigterm()
        return self

    def _stale_or_refuse(self) -> None:
        holder = read_lock(self.path)
        if holder is None:
            return  # released meanwhile: try again
        host = socket.gethostname()
        same_host = holder.get('host') == host
        pid = holder.get('pid')
        if holder and same_host and isinstance(pid, int) and _alive(pid, holder.get('proc_start')):
            raise WorkDirInUseError(
                f'work dir {self.work_dir} is in use by another run: {describe_holder(holder)}. '
                f'Wait for it to finish, give {self.what} another --work-dir, or pass '
                '--share-work-dir to write into it anyway (logs and checkpoints of both runs '
                f'then mix). Lock file: {self.path}')
        if holder and not same_host:
            raise WorkDirInUseError(
                f'work dir {self.work_dir} is locked by a run on another host: '
                f'{describe_holder(holder)}; this host ({host}) cannot tell whether it is still '
                f'running. If it is not, delete {self.path}; or pass --share-work-dir')
        reason = ('an unreadable lock file' if not holder else
                  f'its holder, {describe_holder(holder)}, is no longer running')
        print_log(f'work dir {self.work_dir}: taking over a stale lock ({reason})',
                  logger='current', level=30)
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass

    def _catch_sigterm(self) -> None:
        # SIGTERM (kill, a scheduler's timeout) ends the process without running finally
        # blocks; as SystemExit it releases the lock and removes temporary files. Only where
        # nobody installed a handler, and only from the main thread (Python's rule).
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
            owner = os.getpid()

            def handler(signum, frame):
                if os.getpid() != owner:  # a forked loader worker: die as before
                    signal.signal(signum, signal.SIG_DFL)
                    os.kill(os.getpid(), signum)
                    return
                raise SystemExit(128 + signum)

            self._old_sigterm = signal.signal(signal.SIGTERM, handler)

    def release(self) -> None:
        """Remove the lock if this process still holds it (a forked child never does)."""
        if self._old_sigterm is not None:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None
        if self.record is None or self.record['pid'] != os.getpid():
            return
        holder = read_lock(self.path)
        if holder and holder.get('pid') == self.record['pid'] and \
                holder.get('start') == self.record['start']:
            os.remove(self.path)
        self.record = None

    def __enter__(self) -> 'WorkDirLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def remove_stale_temp_files(folder: str) -> List[str]:
    """Remove the temporary files that an interrupted :func:`~mmvpeft.utils.fileio.atomic_path`
    write left in ``folder`` (not recursive), logging one line naming them.

    Only names of that exact pattern go (``.epoch_3.pth.k2j4_x9a.part.pth``: a dot, the
    target's name, 8 random characters, ``.part`` and the target's extension). Call it only
    while no other writer uses ``folder`` (under :class:`WorkDirLock`).

    Returns:
        The removed paths.
    """
    removed, names = [], []
    if not osp.isdir(folder):
        return removed
    for name in sorted(os.listdir(folder)):
        match = _TEMP_RE.match(name)
        path = osp.join(folder, name)
        if (match and (match['ext'] or '') == osp.splitext(match['name'])[1]
                and osp.isfile(path) and not osp.islink(path)):
            size = osp.getsize(path)
            os.remove(path)
            removed.append(path)
            names.append(f'{name} ({size / 1e6:.1f} MB)')
    if removed:
        print_log(f'{folder}: removed {len(removed)} temporary file(s) of an interrupted '
                  f'write: {", ".join(names)}', logger='current', level=30)
    return removed
