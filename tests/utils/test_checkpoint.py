import os

import pytest

from mmvpeft.utils import AtomicLocalBackend


def test_atomic_put_replaces_whole_file(tmp_path):
    path = tmp_path / 'sub' / 'ckpt.pth'
    backend = AtomicLocalBackend()
    backend.put(b'first', path)
    backend.put(b'second', path)
    assert path.read_bytes() == b'second'
    assert os.listdir(path.parent) == ['ckpt.pth']  # no temporary left behind


def test_failed_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / 'ckpt.pth'
    backend = AtomicLocalBackend()
    backend.put(b'good', path)

    def crash(*args):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'replace', crash)
    with pytest.raises(OSError, match='disk full'):
        backend.put(b'partial', path)
    assert path.read_bytes() == b'good'
    assert os.listdir(tmp_path) == ['ckpt.pth']


def test_mmengine_local_backend_is_atomic():
    import mmvpeft  # noqa: F401  (installs the backend)
    from mmengine.fileio import get_file_backend
    assert isinstance(get_file_backend('/tmp/x.pth'), AtomicLocalBackend)
