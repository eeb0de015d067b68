"""Nothing in ``mmvpeft/models`` imports the data side: a model builds from its config
alone (an AST walk over every module, so an import inside a function counts too)."""
import ast
import os
import os.path as osp

import pytest

import mmvpeft

PACKAGE = osp.dirname(mmvpeft.__file__)
FORBIDDEN = ('mmvpeft.datasets', 'mmvpeft.apis', 'mmvpeft.engine')


def imported_modules(source, package):
    """(absolute module name, line) of each import in ``source``, a module of the dotted
    ``package`` (relative imports resolved)."""
    package = package.split('.')
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                prefix = '.'.join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ''
            for alias in node.names:
                yield f'{prefix}.{alias.name}' if not node.module else prefix, node.lineno


def model_modules():
    for root, _, files in os.walk(osp.join(PACKAGE, 'models')):
        for name in sorted(files):
            if name.endswith('.py'):
                yield osp.join(root, name)


def module_imports(path):
    """The imports of a file of the package (its package: the folder's dotted path)."""
    package = osp.relpath(osp.dirname(path), osp.dirname(PACKAGE)).replace(os.sep, '.')
    with open(path, encoding='utf-8') as f:
        return list(imported_modules(f.read(), package))


def test_the_walker_resolves_relative_and_nested_imports():
    source = ('from .base import A\nfrom ...datasets.qa import build\n'
              'def f():\n    import mmvpeft.datasets as d\n    from .. import heads\n')
    names = [n for n, _ in imported_modules(source, 'mmvpeft.models.tasks')]
    assert names == ['mmvpeft.models.tasks.base', 'mmvpeft.datasets.qa', 'mmvpeft.datasets',
                     'mmvpeft.models.heads']


@pytest.mark.parametrize('path', list(model_modules()),
                         ids=lambda p: osp.relpath(p, PACKAGE))
def test_no_model_module_imports_the_data_side(path):
    bad = [f'line {line}: {name}' for name, line in module_imports(path)
           if name == 'mmvpeft.datasets' or name.startswith(FORBIDDEN)]
    assert not bad, f'{osp.relpath(path, PACKAGE)} imports upward: {bad}'
