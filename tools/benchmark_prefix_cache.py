"""Per-step training time from a frozen-prefix cache against decoding and running the frozen
prefix, measured through ``tools/train.py`` itself.

    python tools/benchmark_prefix_cache.py [--tasks retrieval read] [--steps 5]
        [--batch-size 2] [--tiny] [--work-dir DIR] [--keep]

For each task a config is written (synthetic moving-shape videos, generated on first use;
random CLIP weights, so nothing is downloaded), then

1. ``tools/train.py CONFIG`` runs ``steps + 1`` training iterations decoding every video and
   running the whole towers;
2. ``tools/build_prefix_cache.py CONFIG CACHE --loaders train_dataloader`` builds the cache
   (its time and size are printed: a one-time cost);
3. ``tools/train.py CONFIG --cfg-options prefix_cache=CACHE`` runs the same iterations from it.

The first iteration of each run (start-up) is left out; the figure is the median of the
other iterations' ``time`` (MMEngine's per-iteration time: data loading, which is where
decoding happens with ``num_workers=0``, plus forward, backward and the optimizer step), with
``data_time`` beside it. Tasks:

- ``retrieval``: ``configs/tokenmix_msrvtt_retrieval.py``'s model (ViT-B/16 at 224 px, Token
  Mixing in the last block: the cache holds the states entering block 11; the text tower
  has no method, so its whole output is cached), 8 random frames per video;
- ``read``: ``configs/_base_/models/read_b32_grounder.py``'s grounding model (ViT-B/32 at
  224 px, READ in the last 4 blocks of both towers, PVLA): cached from block 8, 32 clips of
  1 s per video.

``--tiny`` uses the demos' tiny towers instead (32 px, 2 blocks): seconds, for checking
that the tool runs, not for the figures. Timings depend on the machine's load: the tool
prints ``/proc/loadavg`` before and after each run.
"""
import argparse
import math
import os
import os.path as osp
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from mmengine.config import Config

from mmvpeft.apis.benchmarking import load_average

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
_ITER = re.compile(r'Iter\(train\)\s*\[\s*(\d+)/\s*(\d+)\].*?\btime: ([\d.]+)\s+'
                   r'data_time: ([\d.]+)')


def _full_towers(task: str) -> dict:
    """The full-size model of the task, with random weights."""
    if task == 'retrieval':
        model = Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'models',
                                         'clip_b16_retriever.py')).model.to_dict()
        model['video_backbone']['peft'] = [dict(type='TokenMixing', layers=(-1, ), alpha=0.8)]
        model['loss'] = dict(type='SymmetricInfoNCELoss')
    else:
        model = Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'models',
                                         'read_b32_grounder.py')).model.to_dict()
    for tower in ('video_backbone', 'text_backbone'):
        model[tower]['pretrained'] = None  # random weights: nothing to download
    return model


def make_config(task: str, work_dir: str, steps: int, batch_size: int, tiny: bool) -> str:
    """Write the benchmark config of ``task`` into ``work_dir``; returns its path."""
    demo = 'retrieval_demo.py' if task == 'retrieval' else 'read_demo.py'
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'demo', demo))
    items = batch_size * (steps + 1)
    size = 32 if tiny else 224
    if task == 'retrieval':
        # 2 captions per video, one (video, caption) pair per training item; 12 frames a
        # video for 8 sampled at random.
        gen = dict(num_train=math.ceil(items / 2), num_val=2, duration=2.0, fps=6,
                   size=(64, 64))
    else:
        # 32 s at 2 fps: 32 clips of 1 s; about 2 training queries per video.
        gen = dict(num_videos=math.ceil(items / 2) + 2, duration=32.0, fps=2, size=(64, 64),
                   val_ratio=0.25)
    if not tiny:
        cfg.model = _full_towers(task)
    for name in ('train_dataloader', ):
        loader = cfg[name]
        loader.dataset.data_root = osp.join(work_dir, f'data_{task}')
        loader.dataset.generator = gen
        for t in loader.dataset.pipeline:
            if t['type'] == 'VideoResize':
                t['short_side'] = size
            elif t['type'] == 'VideoCenterCrop':
                t['size'] = size
            elif t['type'] == 'CLIPTokenize' and not tiny:
                t['context_length'] = 32
        loader.batch_size = batch_size
        loader.num_workers = 0
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator', 'test_dataloader', 'test_cfg',
                'test_evaluator'):
        cfg[key] = None  # training steps only (an iteration loop validates at its end)
    cfg.train_dataloader.sampler = dict(type='InfiniteSampler', shuffle=True)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=steps + 1, val_interval=10**9)
    cfg.param_scheduler = []
    cfg.randomness = dict(seed=0)  # random towers: the cache and the run get the same ones
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10**9,
                                        save_last=False)
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks', [])
                        if h.get('type') not in ('AdapterExportHook', )]
    cfg.log_processor = dict(type='LogProcessor', window_size=1, by_epoch=False)
    path = osp.join(work_dir, f'bench_{task}.py')
    cfg.dump(path)
    return path


def _run(cmd, log_path: str) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    with open(log_path, 'w') as f:
        f.write(proc.stdout)
    if proc.returncode:
        sys.stdout.write(proc.stdout[-3000:])
        raise RuntimeError(f'{" ".join(cmd)} failed ({proc.returncode}); log: {log_path}')
    return proc.stdout


def step_times(log: str):
    """``[(time, data_time)]`` of the logged training iterations after the first."""
    rows = [(int(m.group(1)), float(m.group(3)), float(m.group(4)))
            for m in _ITER.finditer(log)]
    return [(t, d) for i, t, d in rows if i > 1]


def train_run(config: str, work_dir: str, name: str, options=()) -> dict:
    load = load_average()
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), config, '--work-dir',
           osp.join(work_dir, name)]
    if options:
        cmd += ['--cfg-options', *options]
    log = _run(cmd, osp.join(work_dir, f'{name}.log'))
    times = step_times(log)
    if not times:
        raise RuntimeError(f'no training iterations logged by {" ".join(cmd)}')
    return dict(step=statistics.median(t for t, _ in times),
                data=statistics.median(d for _, d in times), steps=len(times),
                load=f'{load} -> {load_average()}')


def benchmark(task: str, work_dir: str, steps: int, batch_size: int, tiny: bool) -> dict:
    config = make_config(task, work_dir, steps, batch_size, tiny)
    cache = osp.join(work_dir, f'cache_{task}')
    shutil.rmtree(cache, ignore_errors=True)
    decoded = train_run(config, work_dir, f'{task}_decoded')  # also generates the videos
    load = load_average()
    start = time.perf_counter()
    _run([sys.executable, osp.join(ROOT, 'tools', 'build_prefix_cache.py'), config, cache,
          '--loaders', 'train_dataloader', '--no-progress'],
         osp.join(work_dir, f'{task}_build.log'))
    build = dict(seconds=time.perf_counter() - start, load=f'{load} -> {load_average()}',
                 mib=sum(osp.getsize(osp.join(d, f)) for d, _, fs in os.walk(cache)
                         for f in fs) / 2**20)
    cached = train_run(config, work_dir, f'{task}_cached', [f'prefix_cache={cache}'])
    return dict(task=task, decoded=decoded, cached=cached, build=build,
                speedup=decoded['step'] / cached['step'])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--tasks', nargs='+', choices=['retrieval', 'read'],
                        default=['retrieval', 'read'])
    parser.add_argument('--steps', type=int, default=5, help='timed iterations per run')
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--tiny', action='store_true',
                        help="the demos' tiny towers (checks the tool; not for figures)")
    parser.add_argument('--work-dir', help='default: a temporary folder, removed after')
    parser.add_argument('--keep', action='store_true', help='keep the temporary folder')
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1:
        parser.error('--steps and --batch-size must be >= 1')
    work_dir = args.work_dir or tempfile.mkdtemp(prefix='bench_prefix_cache_')
    os.makedirs(work_dir, exist_ok=True)
    work_dir = osp.abspath(work_dir)
    threads = os.environ.get('OMP_NUM_THREADS', 'unset')
    print(f'# prefix-cache benchmark: {os.cpu_count()} CPUs, OMP_NUM_THREADS={threads}, '
          f'batch {args.batch_size}, {args.steps} timed steps, '
          f'{"tiny" if args.tiny else "full-size"} towers, work dir {work_dir}')
    results = []
    try:
        for task in args.tasks:
            r = benchmark(task, work_dir, args.steps, args.batch_size, args.tiny)
            results.append(r)
            d, c, b = r['decoded'], r['cached'], r['build']
            print(f'{task}: decoded step {d["step"]:.3f} s (data {d["data"]:.3f} s, load '
                  f'{d["load"]}) | cached step {c["step"]:.3f} s (data {c["data"]:.3f} s, '
                  f'load {c["load"]}) | speed-up {r["speedup"]:.2f}x | cache build '
                  f'{b["seconds"]:.1f} s, {b["mib"]:.1f} MiB (load {b["load"]})', flush=True)
    finally:
        if not args.work_dir and not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)
    return results


if __name__ == '__main__':
    main()
