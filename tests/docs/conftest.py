"""Command blocks of README.md and docs/**/*.md, run as a user would run them.

A fenced block is run when the line before it is a marker:

- ``<!-- doc-test: NAME -->``: the block belongs to group NAME. Blocks of one group in one
  file run in order. The same NAME in another file must hold the same blocks (one command
  shown on two pages is run once).
- ``<!-- doc-test: NAME (after OTHER) -->``: group NAME runs after OTHER, in OTHER's copy of
  the clone, so it can use what OTHER wrote (a trained work dir) without training again.
- ``<!-- doc-test: skip (REASON) -->``: the block is not run (a GPU, real data); the test
  report shows REASON.

How a group runs:

- shell blocks (``bash``): line by line, as written, each line in its own shell, from the
  root of a copy of the clone (code, configs, tools; no data, no work dirs); ``  # ...``
  comments are stripped;
- python blocks: each block is written to a file (``# name.py`` on its first line names it,
  else ``blockN.py``) and the last one is run with the interpreter, from a folder outside
  the repository, or from OTHER's copy of the clone for ``(after OTHER)``. Each
  ``print(...)  # expected`` line must print a line matching its comment (``...`` matches
  any text).

Every ``bash`` block of the docs must carry a marker, so that no command a user runs is left
untested by accident (``text`` blocks hold usage synopses and layouts).
"""
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MARKER = re.compile(
    r'<!-- doc-test: (?P<name>[\w-]+)(?: \((?P<arg>[^)]*(?:\([^)]*\)[^)]*)*)\))? -->[ \t]*\n'
    r'```(?P<lang>\w+)\n(?P<code>.*?)```', re.S)
FENCE = re.compile(r'^```(\w*)\n(.*?)^```', re.S | re.M)
COMMAND_LANGS = ('bash', 'sh', 'shell', 'console')


def doc_files():
    """README.md and every markdown file under docs/, as paths relative to the repo."""
    files = ['README.md']
    for dirpath, _, names in os.walk(osp.join(REPO_ROOT, 'docs')):
        files += [osp.relpath(osp.join(dirpath, n), REPO_ROOT) for n in sorted(names)
                  if n.endswith('.md')]
    return sorted(files)


def _read(rel):
    with open(osp.join(REPO_ROOT, rel), encoding='utf-8') as f:
        return f.read()


@dataclass
class Group:
    """One named group of blocks: ``blocks`` is ``[(lang, code), ...]`` in document order."""
    name: str
    files: list = field(default_factory=list)
    blocks: list = field(default_factory=list)
    after: str = None


@dataclass
class Skip:
    where: str
    lang: str
    reason: str


def collect(texts=None):
    """``({name: Group}, [Skip], [problems])`` over ``{file: text}`` (README.md and docs/)."""
    if texts is None:
        texts = {rel: _read(rel) for rel in doc_files()}
    groups, skips, problems = {}, [], []
    for rel, text in texts.items():
        per_file = {}
        for m in MARKER.finditer(text):
            line = text.count('\n', 0, m.start()) + 1
            name, arg, lang = m['name'], m['arg'], m['lang']
            if name == 'skip':
                if not arg:
                    problems.append(f'{rel}:{line}: "doc-test: skip" needs a (reason)')
                skips.append(Skip(f'{rel}:{line}', lang, arg or ''))
                continue
            after = None
            if arg:
                found = re.fullmatch(r'after ([\w-]+)', arg)
                if not found:
                    problems.append(f'{rel}:{line}: unknown marker argument ({arg})')
                    continue
                after = found[1]
            group = per_file.setdefault(name, Group(name, [rel], after=after))
            if after and group.after not in (None, after):
                problems.append(f'{rel}:{line}: group {name} names two (after ...) groups')
            group.after = group.after or after
            group.blocks.append((lang, m['code']))
        for name, group in per_file.items():
            if name in groups:
                first = groups[name]
                if (first.blocks, first.after) != (group.blocks, group.after):
                    problems.append(f'{rel}: group {name} differs from the one in '
                                    f'{first.files[0]}: one name, one set of commands')
                first.files.append(rel)
            else:
                groups[name] = group
    for name, group in groups.items():
        seen, current = {name}, group
        while current.after:
            if current.after not in groups:
                problems.append(f'group {name} runs after {current.after}, which no doc '
                                'defines')
                break
            if current.after in seen:
                problems.append(f'group {name}: its (after ...) groups form a cycle')
                break
            seen.add(current.after)
            current = groups[current.after]
    return groups, skips, problems


def unmarked_command_blocks(texts=None):
    """``file:line`` of every shell block that carries no doc-test marker."""
    if texts is None:
        texts = {rel: _read(rel) for rel in doc_files()}
    missing = []
    for rel, text in texts.items():
        for m in FENCE.finditer(text):
            if m[1] not in COMMAND_LANGS:
                continue
            before = text[:m.start()].rstrip().rsplit('\n', 1)[-1]
            if not before.startswith('<!-- doc-test: '):
                missing.append(f'{rel}:{text.count(chr(10), 0, m.start()) + 1}')
    return missing


GROUPS, SKIPS, PROBLEMS = collect()


def chains(groups=None):
    """Root groups with the groups that run after them, in run order: ``{root: [names]}``."""
    groups = GROUPS if groups is None else groups
    children = {}
    for name, group in groups.items():
        if group.after:
            children.setdefault(group.after, []).append(name)
    out = {}
    for name, group in groups.items():
        if group.after:
            continue
        order, todo = [], [name]
        while todo:
            current = todo.pop(0)
            order.append(current)
            todo += children.get(current, [])
        out[name] = order
    return out


def run_env():
    env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONUNBUFFERED='1')
    env.setdefault('OMP_NUM_THREADS', '2')
    # The docs say `python`; make it this interpreter whatever PATH holds.
    env['PATH'] = osp.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    return env


def clone_copy(dst):
    """The clone as a user has it (code, configs, tools), without data or work dirs."""
    ignore = shutil.ignore_patterns('.git', '.venv', 'data', 'work_dirs', '__pycache__',
                                    '*.egg-info', '.pytest_cache')
    shutil.copytree(REPO_ROOT, dst, ignore=ignore)
    return str(dst)


def shell_lines(code):
    return [ln for ln in (raw.split('  #')[0].strip() for raw in code.splitlines()) if ln]


def run_shell(code, cwd):
    """Each line of a shell block in its own shell; returns each line's stdout + stderr."""
    outputs = []
    for line in shell_lines(code):
        out = subprocess.run(line, shell=True, cwd=cwd, env=run_env(), capture_output=True,
                             text=True, timeout=900)
        assert out.returncode == 0, f'{line}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}'
        outputs.append(out.stdout + out.stderr)
    return outputs


def expected_prints(code):
    """``print(...)  # expected`` comments, in order."""
    return [line.split('  # ', 1)[1].strip() for line in code.splitlines()
            if line.lstrip().startswith('print(') and '  # ' in line]


def matches(expected, line):
    pos = 0
    for part in (p.strip() for p in expected.split('...')):
        found = line.find(part, pos)
        if found < 0:
            return False
        pos = found + len(part)
    return True


def run_python(blocks, cwd):
    """Write the blocks into ``cwd``, run the last one, check its expected prints."""
    script = None
    for i, (_, code) in enumerate(blocks):
        first = code.splitlines()[0]
        fname = first[2:].strip() if re.fullmatch(r'# [\w.]+\.py', first) else f'block{i}.py'
        with open(osp.join(cwd, fname), 'w') as f:
            f.write(code)
        script = fname
    out = subprocess.run([sys.executable, script], cwd=cwd, env=run_env(),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    printed = out.stdout.strip().splitlines()
    expected = expected_prints(blocks[-1][1])
    assert len(printed) == len(expected), out.stdout
    for exp, line in zip(expected, printed):
        assert matches(exp, line), f'{line!r} does not match the doc comment {exp!r}'
    return [out.stdout + out.stderr]


def run_group(group, workdir, clone):
    """Run one group; ``clone`` is the clone copy of its chain (made on first need)."""
    langs = {lang for lang, _ in group.blocks}
    if langs <= {'python'}:
        cwd = clone() if group.after else osp.join(workdir, f'user_{group.name}')
        os.makedirs(cwd, exist_ok=True)
        return run_python(group.blocks, cwd)
    outputs = []
    for lang, code in group.blocks:
        assert lang in COMMAND_LANGS, f'group {group.name}: cannot run a {lang} block'
        outputs += run_shell(code, clone())
    return outputs


def pytest_generate_tests(metafunc):
    """``doc_chain``: one test per root group; ``doc_skip``: one per skipped block."""
    if 'doc_chain' in metafunc.fixturenames:
        roots = chains()
        metafunc.parametrize('doc_chain', [roots[r] for r in sorted(roots)], ids=sorted(roots))
    if 'doc_skip' in metafunc.fixturenames:
        metafunc.parametrize('doc_skip', [(s.where, s.reason) for s in SKIPS],
                             ids=[s.where for s in SKIPS])


@pytest.fixture(scope='session')
def docs():
    """What the tests read: the groups, the skipped blocks, marker problems."""
    from types import SimpleNamespace
    return SimpleNamespace(groups=GROUPS, skips=SKIPS, problems=PROBLEMS,
                           unmarked=unmarked_command_blocks(), files=doc_files(),
                           repo_root=REPO_ROOT, collect=collect,
                           unmarked_in=unmarked_command_blocks, chains=chains,
                           expected_prints=expected_prints, matches=matches,
                           shell_lines=shell_lines)


@pytest.fixture
def run_chain(tmp_path):
    """``run_chain(names) -> {name: (clone_root, [outputs per line])}``, in one clone copy."""
    def run(names):
        made = []

        def clone():
            if not made:
                made.append(clone_copy(tmp_path / 'mmvpeft'))
            return made[0]

        outputs = {name: run_group(GROUPS[name], str(tmp_path), clone) for name in names}
        root = made[0] if made else None
        return {name: (root, outs) for name, outs in outputs.items()}

    return run
