"""Wall time of a quick-start command as written against the same command with
``OMP_NUM_THREADS=1``: does the thread choice of ``tools/train.py`` keep a small CPU
machine from being oversubscribed?

    python tools/benchmark_threads.py [--config configs/demo/read_demo.py] [--repeat 1]
        [--cfg-options k=v ...] [--also-threads N] [--keep]

Each run is ``python tools/train.py CONFIG`` (plus ``--cfg-options`` if given), in its own
fresh folder holding links to this clone's ``tools/`` and ``configs/``, so it starts as a new
user's would: no data, no work dir (the synthetic data is written first, inside the timed
run, in both cases alike). The runs alternate (as written, then one thread, ``--repeat``
times). Printed: each run's wall time, its last validation line, the
``CPU threads:`` line the tool logged, ``/proc/loadavg`` before and after (the machine's
other load counts), and the ratio of the medians. The issue's target is a ratio within 1.3.
``--also-threads N`` adds a third kind of run with ``--cpu-threads N`` (e.g. 2, torch's own
default on 2 cores, for what the tools did before they chose).
"""
import argparse
import os
import os.path as osp
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Optional

from mmvpeft.apis.benchmarking import load_average

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _last(pattern: str, text: str) -> str:
    found = re.findall(pattern, text)
    return found[-1].strip() if found else '(none)'


def run_once(config: str, one_thread: bool, options, keep: bool,
             threads: Optional[int] = None) -> dict:
    """One timed ``tools/train.py`` run in a fresh folder."""
    folder = tempfile.mkdtemp(prefix='mmvpeft_threads_')
    for name in ('tools', 'configs'):
        os.symlink(osp.join(ROOT, name), osp.join(folder, name))
    env = {k: v for k, v in os.environ.items() if k not in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS')}
    if one_thread:
        env['OMP_NUM_THREADS'] = '1'
    cmd = [sys.executable, 'tools/train.py', config]
    if threads:
        cmd += ['--cpu-threads', str(threads)]
    if options:
        cmd += ['--cfg-options', *options]
    load = load_average()
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise SystemExit(f'{" ".join(cmd)} failed in {folder} (exit {proc.returncode}):\n'
                         f'{out[-3000:]}')
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return dict(wall=wall, load_before=load, load_after=load_average(),
                threads=_last(r'CPU threads: ([^\n]*)', out),
                val=_last(r'Epoch\(val\)[^\n]*?(R1@0\.5: [\d.]+[^\n]*?mIoU: [\d.]+|'
                          r't2v/R@1: [\d.]+)', out),
                folder=folder if keep else None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default='configs/demo/read_demo.py',
                        help='relative to the clone, as in the docs')
    parser.add_argument('--repeat', type=int, default=1, help='runs of each kind')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='passed on to tools/train.py (e.g. a shorter run)')
    parser.add_argument('--also-threads', type=int, metavar='N',
                        help='also time the command with --cpu-threads N')
    parser.add_argument('--keep', action='store_true', help='keep the run folders')
    args = parser.parse_args(argv)
    times = {False: [], True: [], 'n': []}
    print(f'machine: {os.cpu_count()} CPUs, load {load_average()}', flush=True)
    for i in range(args.repeat):
        for one_thread in (False, True):
            r = run_once(args.config, one_thread, args.cfg_options, args.keep)
            times[one_thread].append(r['wall'])
            label = 'OMP_NUM_THREADS=1' if one_thread else 'as written       '
            _report(i, label, r)
        if args.also_threads:
            r = run_once(args.config, False, args.cfg_options, args.keep, args.also_threads)
            times['n'].append(r['wall'])
            _report(i, f'--cpu-threads {args.also_threads}'.ljust(17), r)
    written, one = statistics.median(times[False]), statistics.median(times[True])
    print(f'median wall: as written {written:.1f} s, OMP_NUM_THREADS=1 {one:.1f} s, '
          f'ratio {written / one:.2f} (target <= 1.3)')
    if times['n']:
        n = statistics.median(times['n'])
        print(f'median wall with --cpu-threads {args.also_threads}: {n:.1f} s, '
              f'{n / one:.2f}x the one-thread run')


def _report(i: int, label: str, r: dict) -> None:
    print(f'run {i + 1} {label}: {r["wall"]:7.1f} s  load {r["load_before"]} -> '
          f'{r["load_after"]}  [{r["threads"]}]  last val: {r["val"]}'
          f'{"  kept in " + r["folder"] if r["folder"] else ""}', flush=True)


if __name__ == '__main__':
    main()
