"""README examples marked ``<!-- readme-test: NAME -->`` run exactly as written.

Python blocks whose first line is ``# file.py`` are written under that name into a folder
outside the repository and the last block of the group is run there, as a user would run it;
a ``print(...)  # expected`` line must print what its comment says (``...`` skips text).
Shell blocks run line by line, as written, from the root of a copy of the clone.
"""
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MARK = re.compile(r'<!-- readme-test: ([\w-]+) -->\s*```(\w+)\n(.*?)```', re.S)


def readme_blocks():
    with open(osp.join(REPO_ROOT, 'README.md'), encoding='utf-8') as f:
        text = f.read()
    groups = {}
    for name, lang, code in MARK.findall(text):
        groups.setdefault(name, []).append((lang, code))
    return groups


BLOCKS = readme_blocks()


def _env():
    env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONUNBUFFERED='1')
    env.setdefault('OMP_NUM_THREADS', '2')
    return env


def _expected_prints(code):
    """``print(...)  # expected`` comments, in order."""
    return [line.split('  # ', 1)[1].strip() for line in code.splitlines()
            if line.lstrip().startswith('print(') and '  # ' in line]


def _matches(expected, line):
    pos = 0
    for part in (p.strip() for p in expected.split('...')):
        found = line.find(part, pos)
        if found < 0:
            return False
        pos = found + len(part)
    return True


def test_marked_blocks_exist():
    assert {'petl-quickstart', 'own-method', 'retrieval-demo', 'eval-moments', 'adapter-io',
            'demo', 'extract-features'} <= set(BLOCKS)


@pytest.mark.parametrize('name', [n for n, b in BLOCKS.items() if b[-1][0] == 'python'])
def test_python_example_runs_as_written(name, tmp_path):
    blocks = BLOCKS[name]
    script = None
    for i, (lang, code) in enumerate(blocks):
        first = code.splitlines()[0]
        fname = first[2:].strip() if re.fullmatch(r'# [\w.]+\.py', first) else f'block{i}.py'
        (tmp_path / fname).write_text(code)
        script = fname
    out = subprocess.run([sys.executable, script], cwd=tmp_path, env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    printed = out.stdout.strip().splitlines()
    expected = _expected_prints(blocks[-1][1])
    assert len(printed) == len(expected), out.stdout
    for exp, line in zip(expected, printed):
        assert _matches(exp, line), f'{line!r} does not match README comment {exp!r}'


def last_epoch_metrics(log, mode='test'):
    """``{key: value}`` of the last ``Epoch(mode)`` line MMEngine logged.

    Parsed as whole ``key: value`` pairs: a bare search for ``R1@0.5: `` (or ``t2v/R@1: ``)
    also matches the ``chance/...`` key of the same name that the metrics log after it, the
    chance level rather than the model's figure."""
    lines = [ln for ln in log.splitlines() if f'Epoch({mode})' in ln]
    assert lines, f'no Epoch({mode}) line in the output'
    return {k: float(v) for k, v in re.findall(r'(\S+): (-?[\d.]+(?:e[-+]?\d+)?)', lines[-1])}


def _clone_copy(dst):
    """The clone as a user has it (code, configs, tools), without data or work dirs."""
    ignore = shutil.ignore_patterns('.git', '.venv', 'data', 'work_dirs', '__pycache__',
                                    '*.egg-info')
    shutil.copytree(REPO_ROOT, dst, ignore=ignore)
    return dst


def test_retrieval_demo_commands_run_as_written_and_learn(tmp_path):
    """README's two retrieval demo commands; training must lift R@1 far above untrained."""
    root = _clone_copy(tmp_path / 'mmvpeft')
    lines = [ln.split('#')[0].strip() for ln in BLOCKS['retrieval-demo'][0][1].splitlines()]
    results = []
    for line in filter(None, lines):
        out = subprocess.run(line, shell=True, cwd=root, env=_env(), capture_output=True,
                             text=True, timeout=600)
        assert out.returncode == 0, f'{line}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}'
        mode = 'test' if 'tools/test.py' in line else 'val'
        results.append(last_epoch_metrics(out.stdout + out.stderr, mode)['t2v/R@1'])
    untrained, trained = results
    assert trained >= 20.0 and trained >= 3 * untrained, results
