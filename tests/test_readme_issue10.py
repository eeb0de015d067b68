"""README's issue-10 shell block (build a frozen-prefix cache, train from it) runs exactly as
written, line by line from the root of a copy of the clone."""
import os.path as osp
import re
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from test_readme_issue7 import _block, _run_lines  # noqa: E402
from test_readme import _clone_copy  # noqa: E402


def test_prefix_cache_block_runs_as_written(tmp_path):
    root = _clone_copy(tmp_path / 'mmvpeft')
    outputs = _run_lines(_block('prefix-cache'), root)
    assert re.search(r"start blocks \{'video': 1, 'text': 1\}, 8 video\(s\)", outputs[0])
    assert osp.isfile(osp.join(root, 'data/read_demo_cache/video/meta.json'))
    assert 'loss_pvla' in outputs[1] and 'Epoch(val) [1]' in outputs[1]
