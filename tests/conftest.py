"""Shared test fixtures.

``../shared`` (real annotation files) exists beside a CI checkout but not in a user's clone;
tests that need it use ``shared_annotations`` and skip with a clear reason when it is absent.
"""
import os
import os.path as osp

import pytest

# Under pytest-xdist (`-n 2`) each worker process gets one thread: the tests' tiny models
# gain nothing from a second OpenMP thread, and two workers x two threads on two cores made
# steps several times slower from contention. Subprocesses (tools/train.py runs) inherit it.
if os.environ.get('PYTEST_XDIST_WORKER'):
    os.environ['OMP_NUM_THREADS'] = '1'
    import torch
    torch.set_num_threads(1)

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED_ANN_DIR = os.environ.get(
    'MMVPEFT_SHARED_ANNOTATIONS',
    osp.join(osp.dirname(REPO_ROOT), 'shared', 'data', 'annotations'))


@pytest.fixture(scope='session')
def shared_annotations():
    """Path to ``../shared/data/annotations``; skips the test where it does not exist."""
    if not osp.isdir(SHARED_ANN_DIR):
        pytest.skip(f'real annotation files not found at {SHARED_ANN_DIR} '
                    '(they live in ../shared beside a CI checkout; set '
                    'MMVPEFT_SHARED_ANNOTATIONS to point elsewhere)')
    return SHARED_ANN_DIR


@pytest.fixture(scope='session')
def load_tool():
    """Import ``tools/NAME.py`` as a module (tools/ is scripts, not a package)."""
    import importlib.util

    def load(name):
        spec = importlib.util.spec_from_file_location(
            f'mmvpeft_tool_{name}', osp.join(REPO_ROOT, 'tools', f'{name}.py'))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
