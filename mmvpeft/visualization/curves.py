"""Training and validation curves from MMEngine's logs (``tools/analysis/plot_curves.py``).

MMEngine's ``LocalVisBackend`` writes one folder per run inside the work dir::

    WORK_DIR/20261205_083243/vis_data/scalars.json   # one JSON object a line

Training lines carry ``loss``, ``lr``, ... with ``epoch``, ``iter`` and ``step`` (= the
iteration); validation lines carry the metrics with ``step`` (= the epoch when training is
by epoch). A resumed run writes a new folder and continues the step count, so the folders
of one work dir are read in name (time) order and concatenated. A folder without training
lines is a ``tools/test.py`` run and is left out.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

# Bookkeeping entries of every line, not curves.
_META = ('step', 'epoch', 'iter')
# A line is a training line when it has one of these (validation lines have none).
_TRAIN_MARKERS = ('iter', 'lr', 'loss')


def _run_dirs(work_dir: str) -> List[str]:
    if not osp.isdir(work_dir):
        raise FileNotFoundError(f'work dir not found: {work_dir}')
    runs = [osp.join(work_dir, d) for d in sorted(os.listdir(work_dir))
            if osp.isfile(osp.join(work_dir, d, 'vis_data', 'scalars.json'))]
    if not runs:
        raise FileNotFoundError(f'{work_dir}: no */vis_data/scalars.json (is it a work dir '
                                'of tools/train.py with the LocalVisBackend?)')
    return runs


def read_scalars(work_dir: str) -> Dict[str, Dict[str, Tuple[List[float], List[float]]]]:
    """All logged scalars of one work dir.

    Args:
        work_dir: a ``tools/train.py`` work dir (its runs' ``vis_data/scalars.json``).

    Returns:
        ``{'train': {key: (steps, values)}, 'val': {key: (steps, values)}}``: training
        entries against the iteration, validation entries against the ``step`` MMEngine
        logged them at (the epoch in by-epoch training). Lists are in log order.

    Raises:
        FileNotFoundError: no run folder with a ``scalars.json``.
        ValueError: a line that is not a JSON object, naming the file and line.
    """
    series: Dict[str, Dict[str, Tuple[List[float], List[float]]]] = {'train': {}, 'val': {}}
    found_train = False
    for run in _run_dirs(work_dir):
        path = osp.join(run, 'vis_data', 'scalars.json')
        with open(path, encoding='utf-8') as f:
            rows = []
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f'{path}:{n}: not JSON ({e.msg})') from None
                if not isinstance(row, dict):
                    raise ValueError(f'{path}:{n}: expected a JSON object')
                rows.append(row)
        if not any(any(k in r for k in _TRAIN_MARKERS) for r in rows):
            continue  # a test-only run (tools/test.py into the same work dir)
        found_train = True
        for row in rows:
            phase = 'train' if any(k in row for k in _TRAIN_MARKERS) else 'val'
            step = row.get('iter', row.get('step'))
            for key, value in row.items():
                if key in _META or not isinstance(value, (int, float)):
                    continue
                steps, values = series[phase].setdefault(key, ([], []))
                steps.append(float(step))
                values.append(float(value))
    if not found_train:
        raise FileNotFoundError(f'{work_dir}: its scalars.json files hold no training lines '
                                '(only tools/test.py runs)')
    return series


def parse_key(key: str) -> Tuple[Optional[str], str]:
    """``'val:time'`` -> ``('val', 'time')``; ``'loss'`` -> ``(None, 'loss')``."""
    for phase in ('train', 'val'):
        if key.startswith(phase + ':'):
            return phase, key[len(phase) + 1:]
    return None, key


def collect_series(work_dirs: Sequence[str], keys: Sequence[str]
                   ) -> Dict[str, Dict[str, Tuple[str, List[float], List[float]]]]:
    """The curves to draw: for each key, each work dir's ``(phase, steps, values)``.

    A key names a training entry (``loss``, ``loss_cls``, ``lr``) or a validation metric
    (``R1@0.5``, ``t2v/R@1``); a key logged in both (``time``) means the training one unless
    written ``val:time``. A run that did not log a key is left out of that panel.

    Args:
        work_dirs: ``tools/train.py`` work dirs.
        keys: the entries to draw, one panel each.

    Returns:
        ``{key: {work_dir: (phase, steps, values)}}`` in the order given.

    Raises:
        KeyError: a key that no run logged, listing the keys that exist.
    """
    if not work_dirs:
        raise ValueError('give at least one work dir')
    if not keys:
        raise ValueError('give at least one key (--keys loss R1@0.5)')
    logs = {w: read_scalars(w) for w in work_dirs}
    out: Dict[str, Dict[str, Tuple[str, List[float], List[float]]]] = {}
    for key in keys:
        want, name = parse_key(key)
        out[key] = {}
        for work_dir, series in logs.items():
            for phase in ([want] if want else ['train', 'val']):
                if name in series[phase]:
                    out[key][work_dir] = (phase, *series[phase][name])
                    break
        if not out[key]:
            train = sorted({k for s in logs.values() for k in s['train']})
            val = sorted({k for s in logs.values() for k in s['val']})
            raise KeyError(f'no run logged "{key}" (in {", ".join(work_dirs)}); training keys: '
                           f'{", ".join(train) or "none"}; validation keys: '
                           f'{", ".join(val) or "none"}')
    return out


def plot_curves(work_dirs: Sequence[str], keys: Sequence[str], out_file: str,
                labels: Optional[Sequence[str]] = None, columns: int = 2) -> dict:
    """Draw one panel per key, every run overlaid, and save it (PNG, SVG or PDF by the file
    name; matplotlib's Agg backend, no display needed).

    Args:
        work_dirs: ``tools/train.py`` work dirs.
        keys: entries to draw (see :func:`collect_series`).
        out_file: image path; its folder is created.
        labels: legend names of the runs; default: the work dirs' folder names.
        columns: panels per row.

    Returns:
        What was drawn, as :func:`collect_series` returns it.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    data = collect_series(work_dirs, keys)
    if labels is None:
        labels = [osp.basename(osp.normpath(w)) for w in work_dirs]
    if len(labels) != len(work_dirs):
        raise ValueError(f'{len(labels)} labels for {len(work_dirs)} work dirs')
    name_of = dict(zip(work_dirs, labels))
    cols = max(1, min(columns, len(keys)))
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        phases = set()
        for work_dir, (phase, steps, values) in data[key].items():
            phases.add(phase)
            ax.plot(steps, values, marker='o' if phase == 'val' else None, markersize=3,
                    linewidth=1.4, label=name_of[work_dir])
        ax.set_title(key)
        ax.set_xlabel('epoch' if phases == {'val'} else 'iteration')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis('off')
    fig.tight_layout()
    folder = osp.dirname(osp.abspath(out_file))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(out_file, dpi=100)
    plt.close(fig)
    return data
