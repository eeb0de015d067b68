"""An adapter file write that fails half-way leaves the previous file intact (and no
temporary file behind)."""
import os

import pytest
import torch
from torch import nn

from mmvpeft.utils.adapter_io import read_adapter, save_adapter


class _Tiny(nn.Module):
    def __init__(self, value):
        super().__init__()
        self.frozen = nn.Linear(3, 3)
        self.frozen.requires_grad_(False)
        self.adapter = nn.Linear(3, 2)
        nn.init.constant_(self.adapter.weight, value)


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = str(tmp_path / 'adapter.safetensors')
    save_adapter(_Tiny(1.0), path)
    before = open(path, 'rb').read()
    import mmvpeft.utils.fileio as fileio
    real_fsync = fileio._fsync_file

    def half_then_fail(tmp):
        real_fsync(tmp)
        with open(tmp, 'r+b') as f:  # a write cut off half-way (disk full, killed)
            f.truncate(os.path.getsize(tmp) // 2)
        raise OSError('No space left on device')

    monkeypatch.setattr(fileio, '_fsync_file', half_then_fail)
    with pytest.raises(OSError, match='No space left'):
        save_adapter(_Tiny(2.0), path)
    assert open(path, 'rb').read() == before
    tensors, _ = read_adapter(path)
    assert torch.equal(tensors['adapter.weight'], torch.ones(2, 3))
    assert os.listdir(tmp_path) == ['adapter.safetensors']  # the temporary file is gone
    monkeypatch.undo()
    save_adapter(_Tiny(2.0), path)  # and a write that succeeds replaces it
    assert torch.equal(read_adapter(path)[0]['adapter.weight'], torch.full((2, 3), 2.0))
