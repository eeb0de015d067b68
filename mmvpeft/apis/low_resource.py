"""Run a config over training-data fractions x seeds and summarise metric vs fraction.

Each run trains ``config`` on ``train_subset=dict(fraction=f, seed=s)`` (a seeded subset of the
training queries, stratified by video; see :mod:`mmvpeft.datasets.low_resource`) with
``randomness.seed = s``, in ``WORK_DIR/frac{f}_seed{s}``, and is scored by a final validation.
"""
import json
import os.path as osp
import statistics
from typing import List, Optional, Sequence

from mmvpeft.utils.fileio import write_json_atomic


def run_low_resource(config: str, fractions: Sequence[float], seeds: Sequence[int],
                     work_dir: str, cfg_options: Optional[dict] = None) -> List[dict]:
    """Train and validate once per (fraction, seed); returns one row per run.

    Rows: ``fraction``, ``seed``, ``num_train`` (queries kept), ``metrics`` (the final
    validation's dict). Also written to ``WORK_DIR/low_resource_runs.json`` as they finish.
    """
    from .runner import build_runner, load_config

    rows = []
    for fraction in fractions:
        for seed in seeds:
            run_dir = osp.join(work_dir, f'frac{fraction:g}_seed{seed}')
            options = dict(cfg_options or {})
            options.update({'train_dataloader.dataset.train_subset':
                            dict(fraction=float(fraction), seed=int(seed)),
                            'randomness.seed': int(seed)})
            cfg = load_config(config, run_dir, options)
            runner = build_runner(cfg)
            runner.train()
            metrics = {k: float(v) for k, v in runner.val_loop.run().items()}
            with open(osp.join(run_dir, 'train_subset.json'), encoding='utf-8') as f:
                num_train = json.load(f)['num_kept']
            rows.append(dict(fraction=float(fraction), seed=int(seed), num_train=num_train,
                             metrics=metrics))
            write_json_atomic(osp.join(work_dir, 'low_resource_runs.json'), rows)
    return rows


def summarize(rows: List[dict], metrics: Sequence[str]) -> List[dict]:
    """Mean and (sample) std of each metric per fraction, over seeds."""
    out = []
    for fraction in sorted({r['fraction'] for r in rows}):
        runs = [r for r in rows if r['fraction'] == fraction]
        entry = dict(fraction=fraction, seeds=[r['seed'] for r in runs],
                     num_train=statistics.mean(r['num_train'] for r in runs))
        for m in metrics:
            missing = [r['seed'] for r in runs if m not in r['metrics']]
            if missing:
                raise KeyError(f'metric {m!r} is not among the validation metrics '
                               f'{sorted(runs[0]["metrics"])}')
            vals = [r['metrics'][m] for r in runs]
            entry[m] = (statistics.mean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0)
        out.append(entry)
    return out


def format_table(summary: List[dict], metrics: Sequence[str]) -> str:
    head = f'{"fraction":>8} {"queries":>8} {"seeds":>6} ' + ' '.join(
        f'{m:>18}' for m in metrics)
    lines = [head]
    for e in summary:
        cells = ' '.join(f'{e[m][0]:>9.2f} +- {e[m][1]:<5.2f}' for m in metrics)
        lines.append(f'{e["fraction"]:>8g} {e["num_train"]:>8.0f} {len(e["seeds"]):>6} {cells}')
    return '\n'.join(lines)


def plot_summary(summary: List[dict], metrics: Sequence[str], path: str,
                 title: str = '') -> str:
    """Metric (mean, +-std band) vs training fraction, log-scaled x, to ``path`` (PNG)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=120)
    xs = [e['fraction'] for e in summary]
    for m in metrics:
        mean = [e[m][0] for e in summary]
        std = [e[m][1] for e in summary]
        ax.errorbar(xs, mean, yerr=std, marker='o', capsize=3, label=m)
    ax.set_xscale('log')
    ax.set_xticks(xs)
    ax.set_xticklabels([f'{x:g}' for x in xs])
    ax.set_xlabel('fraction of training queries')
    ax.set_ylabel('validation metric')
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def load_rows(work_dir: str) -> List[dict]:
    with open(osp.join(work_dir, 'low_resource_runs.json'), encoding='utf-8') as f:
        return json.load(f)

