"""mmvpeft.utils.fileio: atomic writes and JSON-lines reading."""
import json
import os
import stat

import numpy as np
import pytest

from mmvpeft.utils.fileio import (atomic_path, atomic_write, iter_jsonl, savez_atomic,
                                  umask_file_mode, write_json_atomic, write_jsonl)


def _leftovers(folder, keep):
    return sorted(set(os.listdir(folder)) - set(keep))


def test_writer_raising_half_way_leaves_the_old_file_intact(tmp_path):
    path = tmp_path / 'report.json'
    path.write_text('old content')
    with pytest.raises(RuntimeError, match='boom'):
        with atomic_write(str(path)) as f:
            f.write('half of the new')
            f.flush()
            raise RuntimeError('boom')
    assert path.read_text() == 'old content'
    assert _leftovers(tmp_path, ['report.json']) == []  # the temporary file is removed


def test_jsonl_writer_raising_half_way_leaves_no_file(tmp_path):
    path = tmp_path / 'out' / 'a.jsonl'

    def records():
        yield {'qid': 1}
        raise ValueError('bad record')
    with pytest.raises(ValueError, match='bad record'):
        write_jsonl(str(path), records())
    assert not path.exists() and os.listdir(tmp_path / 'out') == []


def test_writes_replace_the_file_with_the_umask_mode(tmp_path):
    path = tmp_path / 'sub' / 'a.json'  # missing folders are created
    write_json_atomic(str(path), {'a': [1, 2]})
    assert json.loads(path.read_text()) == {'a': [1, 2]}
    write_json_atomic(str(path), {'b': 3})
    assert json.loads(path.read_text()) == {'b': 3}
    assert stat.S_IMODE(path.stat().st_mode) == umask_file_mode()  # not mkstemp's 0600
    old = os.umask(0o077)
    try:
        write_jsonl(str(tmp_path / 'private.jsonl'), [{'x': 1}])
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / 'private.jsonl').stat().st_mode) == 0o600
    assert [r for _, r in iter_jsonl(str(tmp_path / 'private.jsonl'))] == [{'x': 1}]


def test_savez_atomic_keeps_the_name_and_the_arrays(tmp_path):
    path = tmp_path / 'feat.npz'
    savez_atomic(str(path), features=np.arange(6, dtype=np.float32).reshape(3, 2))
    with np.load(path) as data:
        np.testing.assert_array_equal(data['features'], np.arange(6).reshape(3, 2))
    assert _leftovers(tmp_path, ['feat.npz']) == []


def test_atomic_path_keeps_the_extension_for_writers_that_need_it(tmp_path):
    with atomic_path(str(tmp_path / 'clip.mp4')) as tmp:
        assert tmp.endswith('.mp4') and os.path.dirname(tmp) == str(tmp_path)
        with open(tmp, 'wb') as f:
            f.write(b'video')
    assert (tmp_path / 'clip.mp4').read_bytes() == b'video'
    with pytest.raises(ValueError, match='mode'):
        with atomic_write(str(tmp_path / 'x'), 'a'):
            pass


def test_iter_jsonl_skips_blank_lines_and_errors_name_file_and_line(tmp_path):
    path = tmp_path / 'ann.jsonl'
    path.write_text('{"qid": 1}\n\n  \n{"qid": 2}\n{"qid": 3,\n')
    lines = iter_jsonl(str(path), KeyError)
    assert next(lines) == (1, {'qid': 1}) and next(lines) == (4, {'qid': 2})
    with pytest.raises(KeyError, match=rf'{path}:5: invalid JSON'):
        next(lines)
