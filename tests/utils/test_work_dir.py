"""The work-dir lock and the removal of interrupted writes' temporary files."""
import json
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import time

import pytest

from mmvpeft.utils.fileio import atomic_path
from mmvpeft.utils.work_dir import (LOCK_NAME, WorkDirInUseError, WorkDirLock, read_lock,
                                    remove_stale_temp_files)

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


def test_lock_holds_pid_host_and_start_and_goes_on_exit(tmp_path):
    with WorkDirLock(str(tmp_path / 'w')) as lock:
        holder = read_lock(lock.path)
        assert holder['pid'] == os.getpid() and holder['host'] == socket.gethostname()
        assert abs(holder['start'] - time.time()) < 60
        with pytest.raises(WorkDirInUseError, match=rf'PID {os.getpid()} on host '):
            WorkDirLock(str(tmp_path / 'w')).acquire()
        assert read_lock(lock.path) == holder  # the refused attempt changed nothing
    assert not (tmp_path / 'w' / LOCK_NAME).exists()
    with pytest.raises(RuntimeError):
        with WorkDirLock(str(tmp_path / 'w')):
            raise RuntimeError('a failing run')
    assert not (tmp_path / 'w' / LOCK_NAME).exists()


@pytest.fixture
def mm_log():
    """What MMEngine's current logger writes during the test (its stream handler may hold a
    stdout from before pytest's capture began, so capsys can miss it)."""
    import io
    import logging
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    logger.addHandler(handler)
    holder = type('Log', (), {})()
    type(holder).text = property(lambda self: buf.getvalue())
    yield holder
    logger.removeHandler(handler)


def test_stale_lock_is_taken_over_with_a_warning_and_foreign_host_refused(tmp_path, mm_log):
    work = tmp_path / 'w'
    work.mkdir()
    dead = _dead_pid()
    (work / LOCK_NAME).write_text(json.dumps(dict(pid=dead, host=socket.gethostname(),
                                                  start=time.time() - 100)))
    with WorkDirLock(str(work)):
        assert read_lock(str(work / LOCK_NAME))['pid'] == os.getpid()
    assert f'taking over a stale lock (its holder, PID {dead}' in mm_log.text
    (work / LOCK_NAME).write_text(json.dumps(dict(pid=os.getpid(), host='elsewhere-node',
                                                  start=time.time())))
    with pytest.raises(WorkDirInUseError, match='on host elsewhere-node'):
        WorkDirLock(str(work)).acquire()
    assert (work / LOCK_NAME).exists()  # not ours to remove


def test_sigterm_during_a_write_releases_the_lock_and_removes_the_temp_file(tmp_path):
    work = tmp_path / 'w'
    code = ('import time\n'
            'from mmvpeft.utils.fileio import atomic_path\n'
            'from mmvpeft.utils.work_dir import WorkDirLock\n'
            f'with WorkDirLock({str(work)!r}):\n'
            f'    with atomic_path({str(work / "epoch_3.pth")!r}) as tmp:\n'
            '        open(tmp, "wb").write(b"x" * 1000)\n'
            '        time.sleep(60)  # a long checkpoint write\n')
    proc = subprocess.Popen([sys.executable, '-c', code], env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    deadline = time.time() + 60
    while not [n for n in os.listdir(work) if n.endswith('.part.pth')] if work.exists() \
            else True:
        assert time.time() < deadline and proc.poll() is None, 'the writer did not start'
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert os.listdir(work) == []  # no lock, no temporary file, no epoch_3.pth


def test_only_our_temp_file_pattern_is_removed(tmp_path, mm_log):
    with atomic_path(str(tmp_path / 'epoch_3.pth')) as tmp:
        ours = tmp
    # A temp file that a killed run left (same name as atomic_path gives), and user files.
    left = osp.join(tmp_path, osp.basename(ours))
    open(left, 'wb').write(b'x' * 2000)
    left_json = tmp_path / '.scalars.json.ab_12cd3.part.json'
    left_json.write_text('{')
    users = ['.epoch_3.pth.notes', 'my.part.pth', '.epoch_3.pth.ab12cd34.part.txt',
             '.x.pth.TOOLONG123.part.pth', 'epoch_3.pth']
    for name in users:
        (tmp_path / name).write_text('mine')
    removed = remove_stale_temp_files(str(tmp_path))
    assert sorted(removed) == sorted([left, str(left_json)])
    assert sorted(os.listdir(tmp_path)) == sorted(users)
    assert 'removed 2 temporary file(s) of an interrupted write' in mm_log.text
    assert osp.basename(left) in mm_log.text
