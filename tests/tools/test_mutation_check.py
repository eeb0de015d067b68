"""tools/dev/mutation_check.py on a throwaway two-file package (the real check is not run in
the test suite: it takes minutes)."""
import importlib.util
import os.path as osp

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location(
        'mmvpeft_mutation_check', osp.join(REPO_ROOT, 'tools', 'dev', 'mutation_check.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _toy_repo(root):
    # Named mmvpeft so that the tool's "imports the scratch copy" guard applies to it too.
    (root / 'mmvpeft').mkdir(parents=True)
    (root / 'mmvpeft' / '__init__.py').write_text(
        'def add(a, b):\n    return a + b\n\n\ndef untested(a):\n    return a\n')
    (root / 'tests').mkdir()
    (root / 'tests' / 'test_add.py').write_text(
        'from mmvpeft import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n')
    (root / 'pytest.ini').write_text('[pytest]\ntestpaths = tests\n')


def test_caught_missed_and_moved_code(tool, tmp_path):
    _toy_repo(tmp_path / 'toy')
    M = tool.Mutation
    mutations = [
        M('add-subtracts', 'mmvpeft/__init__.py', 'return a + b', 'return a - b',
          ('tests/test_add.py::test_add', )),
        M('untested-changed', 'mmvpeft/__init__.py', 'return a\n', 'return -a\n',
          ('tests/test_add.py', )),
        M('code-moved', 'mmvpeft/__init__.py', 'return a * b', 'return a / b',
          ('tests/test_add.py', )),
        M('no-such-test', 'mmvpeft/__init__.py', 'return a + b', 'return a - b',
          ('tests/test_add.py::test_nope', )),
    ]
    results = tool.check(mutations[:3], repo=str(tmp_path / 'toy'),
                         scratch=str(tmp_path / 'scratch'), timeout=120, echo=lambda s: None)
    assert [r.status for r in results] == ['caught', 'MISSED', 'NOT FOUND']
    assert 'not found' in results[2].detail
    # Every mutation was undone: the copy equals the original again.
    assert (tmp_path / 'scratch' / 'mmvpeft' / '__init__.py').read_text() == (
        tmp_path / 'toy' / 'mmvpeft' / '__init__.py').read_text()
    # A wrong test id is neither caught nor missed (the baseline would reject it).
    bad = tool.check(mutations[3:], repo=str(tmp_path / 'toy'),
                     scratch=str(tmp_path / 'scratch2'), timeout=120, baseline=False,
                     echo=lambda s: None)
    assert bad[0].status == 'BAD TESTS'
    assert '0/1 caught' in tool.table(bad)


def test_listed_mutations_are_well_formed(tool):
    names = [m.name for m in tool.MUTATIONS]
    assert len(set(names)) == len(names)
    # Whether each source text is still there is the tool's job (NOT FOUND), not the suite's:
    # code moves, and the suite must not fail for it.
    for m in tool.MUTATIONS:
        assert m.tests and all(t.startswith('tests/') for t in m.tests), m.name
        assert all(old and old != new for _, old, new in m.edits), m.name
