"""Grounding on videos 11x longer than the trained length: accuracy and peak memory.

    python tools/benchmark_long_video.py [--work-dir work_dirs/long_video] [--videos 5]
        [--feature-epochs 40] [--frame-epochs 60] [--skip-train] [--skip-memory]
        [--only features|frames] [--frame-config configs/demo/read_long_demo.py]

1. Trains two grounding models on short synthetic videos (``tools/train.py``):
   ``grounding_demo.py`` on clip features (videos of 20-40 clips of 2 s; window 40) and
   ``--frame-config`` (default ``read_long_demo.py``, 60 epochs) on moving-shape mp4s
   (16 s, clips of 1 s; window 16).
2. Draws ``--videos`` long videos of each kind from the same distributions, 11x the
   trained length (440 clips = 880 s of features; 176 s of frames), with the queried
   moment (2-5 clips) in the last tenth and distractor events of other concepts / colours
   throughout. The moment is shorter than one clip of the resampled video (22 s, 11 s).
3. Predicts with ``init_grounder(..., long_video=dict(window=W, stride=W // 2)).predict``
   (streamed, stitched) and, for comparison, with the earlier resampling to ``W`` clips;
   prints the top-1 tIoU of each and how many moments each found (tIoU >= 0.5). For frames
   it also prints the query sensitivity: how much the saliency moves when the query names
   another colour (near 0: the model locates events but does not read the query, so no
   calibration across windows can pick the queried one).
4. Memory, each in a fresh subprocess (``read_demo`` model, 256 x 256 mp4s so frames
   dominate): the rise of the process's peak resident memory during one ``predict`` over
   what the process held before it (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``
   after a warm-up prediction; ``ru_maxrss`` where the reset is refused), and the peak of
   Python / NumPy allocations (``tracemalloc``, which sees the decoded frames but not torch's
   own buffers), for a video of the trained length (16 s) and long ones (176 s, 352 s):
   streamed (``long_video``, one window per forward pass) and decoded whole, as
   ``tools/test.py`` does with ``long_video.stream=False`` (the model still windows). Then
   the same rise during ``tools/test.py``'s test loop on synthetic val videos of 16, 176 and
   352 s: streamed (the default) and with ``long_video.stream=False``.
"""
import argparse
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _iou(a, b) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union > 0 else 0.0


def _train(config: str, work_dir: str, epochs: int, extra=()) -> str:
    adapter = osp.join(work_dir, 'adapter_latest.safetensors')
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), config, '--work-dir', work_dir,
           '--cfg-options', f'train_cfg.max_epochs={epochs}', *extra]
    t = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    print(f'trained {osp.basename(config)} {epochs} epochs in {time.time() - t:.0f} s',
          flush=True)
    return adapter


def _same_frozen_base() -> None:
    """The demos' towers are random (no pretrained weights) and an adapter file holds the
    trained tensors only. The towers now come from the config's ``init_seed``; seeding the
    global RNG as training did (``randomness.seed``, 0) also covers checkpoints of runs
    made before that."""
    from mmengine.runner import set_random_seed
    set_random_seed(0)


def _features(args, adapter: str) -> None:
    import numpy as np
    from mmvpeft.apis import init_grounder
    from mmvpeft.datasets.synthetic.long_videos import long_concept_features
    from mmvpeft.datasets.transforms.processing import uniform_subsample

    window, num_clips = 40, 440
    g = init_grounder(osp.join(ROOT, 'configs/demo/grounding_demo.py'), adapter, 'cpu',
                      long_video=dict(window=window, stride=window // 2))
    rows = []
    for seed in range(args.videos):
        rng = np.random.default_rng(seed)
        length = int(rng.integers(2, 6))
        start = int(rng.integers(int(0.9 * num_clips) + 1, num_clips - length))
        v = long_concept_features(num_clips, (start, start + length), seed=seed)
        t = time.time()
        r = g.predict(v['video_feat'], v['text_feat'])
        secs = time.time() - t
        # the earlier behaviour: rows subsampled to the window, each standing for 22 s
        keep = uniform_subsample(num_clips, window)
        old = g.predict(v['video_feat'][keep], v['text_feat'], long_video=dict(window=window))
        scale = num_clips / window
        old_best = [x * scale for x in old['windows'][0][:2]]
        rows.append((_iou(r['windows'][0][:2], v['window']), _iou(old_best, v['window'])))
        print(f'  features seed {seed}: moment {v["window"]} s of {v["duration"]:.0f} s; '
              f'sliding {r["windows"][0][0]:.1f}-{r["windows"][0][1]:.1f} s '
              f'tIoU {rows[-1][0]:.2f} ({r["num_windows"]} windows, {secs:.2f} s); '
              f'resampled {old_best[0]:.1f}-{old_best[1]:.1f} s tIoU {rows[-1][1]:.2f}',
              flush=True)
    _summary('features (grounding_demo, 440 clips x 2 s, window 40)', rows)


def _frames(args, adapter: str) -> None:
    import numpy as np
    from mmvpeft.apis import init_grounder
    from mmvpeft.datasets.synthetic.long_videos import write_long_shape_video
    from mmvpeft.datasets.synthetic.videos import COLORS

    window, duration = 16, 176.0
    config = args.frame_config
    _same_frozen_base()
    g = init_grounder(config, adapter, 'cpu', long_video=dict(window=window, stride=8))
    _same_frozen_base()
    old = init_grounder(config, adapter, 'cpu', cfg_options={
        'test_dataloader.dataset.pipeline': _with_max_clips(config, window)})
    rows, shifts = [], []
    os.makedirs(osp.join(args.work_dir, 'videos'), exist_ok=True)
    for seed in range(args.videos):
        rng = np.random.default_rng(seed)
        length = int(rng.integers(2, 6))
        start = int(rng.integers(int(0.9 * duration) + 1, int(duration) - length))
        path = osp.join(args.work_dir, 'videos', f'long_{seed}.mp4')
        info = write_long_shape_video(path, duration, (start, start + length), seed=seed)
        t = time.time()
        r = g.predict(path, info['query'])
        secs = time.time() - t
        o = old.predict(path, info['query'])
        # A model that reads the query scores the video differently for another colour; one
        # that ignores it (it learned where events are, not which one) does not.
        other = next(c for c in COLORS if c != info['events'][0]['color'])
        alt = g.predict(path, info['query'].replace(info['events'][0]['color'], other, 1))
        shifts.append(float(np.abs(np.subtract(r['saliency'], alt['saliency'])).max()))
        rows.append((_iou(r['windows'][0][:2], info['window']),
                     _iou(o['windows'][0][:2], info['window'])))
        print(f'  frames seed {seed}: "{info["query"]}" at {info["window"]} s of '
              f'{duration:.0f} s; sliding {r["windows"][0][0]:.1f}-{r["windows"][0][1]:.1f} s '
              f'tIoU {rows[-1][0]:.2f} ({r["num_windows"]} windows, {secs:.2f} s); resampled '
              f'{o["windows"][0][0]:.1f}-{o["windows"][0][1]:.1f} s tIoU {rows[-1][1]:.2f}',
              flush=True)
    _summary(f'frames ({osp.splitext(osp.basename(config))[0]}, 176 clips x 1 s, window 16)',
             rows)
    print(f'frames: query sensitivity: largest change of a clip\'s saliency when the query '
          f'names another colour, mean over videos {sum(shifts) / len(shifts):.3f} (near 0: '
          f'the model ignores the query)', flush=True)


def _with_max_clips(config: str, max_clips: int) -> list:
    from mmengine.config import Config
    pipeline = [dict(s) for s in Config.fromfile(config).test_dataloader.dataset.pipeline]
    pipeline[0]['max_clips'] = max_clips
    return pipeline


def _summary(name: str, rows) -> None:
    for k, label in ((0, 'sliding (long_video)'), (1, 'resampled (earlier)')):
        ious = [r[k] for r in rows]
        print(f'{name}: {label}: found {sum(i >= 0.5 for i in ious)}/{len(ious)} '
              f'(tIoU >= 0.5), mean top-1 tIoU {sum(ious) / len(ious):.2f}', flush=True)


# ---- memory, one measurement per subprocess ----

def _hwm_kib() -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1])
    raise OSError('no VmHWM')


def _rss_kib() -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    raise OSError('no VmRSS')


def _measure(args) -> None:
    """Child: warm up on the short video, then measure one predict on ``args.video``."""
    import tracemalloc
    from mmvpeft.apis import init_grounder
    config = osp.join(ROOT, 'configs/demo/read_demo.py')
    # one window per forward pass, as a video of the trained length has
    lv = dict(window=16, stride=8, batch_windows=1)
    if args.measure == 'stream':
        g = init_grounder(config, None, 'cpu', long_video=lv)
    else:  # decoded whole, windows run by the model (tools/test.py with stream=False)
        g = init_grounder(config, None, 'cpu', long_video=dict(lv, mode='sliding'))
        g.long_video = None  # predict_batch decodes the whole video with the test pipeline
        g.pipeline.transforms[0].max_clips = None
    g.predict(args.warmup, 'a red circle moves to the right')
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # reset VmHWM to the current RSS
        how = 'VmHWM'
    except OSError:
        how = 'ru_maxrss'
    before = _rss_kib()
    tracemalloc.start()
    g.predict(args.video, 'a red circle moves to the right')
    py_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    peak = _hwm_kib() if how == 'VmHWM' else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(dict(rise_mib=(peak - before) / 1024, peak_mib=peak / 1024,
                          tracemalloc_mib=py_peak / 2**20, how=how)))


def _measure_test(args) -> None:
    """Child: the rise of peak RSS during ``tools/test.py``'s test loop (``read_demo``, one
    synthetic 256 x 256 val video of ``args.duration`` s), streamed or decoded whole."""
    import importlib.util

    from mmengine.runner import Runner

    from mmvpeft.datasets.synthetic.videos import generate_synthetic_videos
    root = osp.join(args.work_dir, f'test_{args.duration:g}s')
    gen = dict(num_videos=4, duration=args.duration, fps=4, size=(256, 256),
               events_per_video=(1, 1), val_ratio=0.25)
    generate_synthetic_videos(root, **gen)  # before the measurement (the loader finds it)
    rec, run_test = {}, Runner.test

    def test(self):
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # reset VmHWM to the current RSS
        rec['before'] = _rss_kib()
        out = run_test(self)
        rec['peak'] = _hwm_kib()
        return out

    Runner.test = test
    spec = importlib.util.spec_from_file_location('test_tool', osp.join(ROOT, 'tools/test.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    key = 'test_dataloader.dataset.generator'
    tool.main([osp.join(ROOT, 'configs/demo/read_demo.py'), 'none', '--work-dir',
               osp.join(root, args.measure), '--cfg-options', f'data_root={root}',
               *[f'{key}.{k}={v!r}'.replace(' ', '') for k, v in gen.items()],
               'long_video.window=16', 'long_video.stride=8', 'test_dataloader.batch_size=1',
               f'long_video.stream={args.measure == "test-stream"}'])
    print(json.dumps(dict(rise_mib=(rec['peak'] - rec['before']) / 1024,
                          peak_mib=rec['peak'] / 1024)))


def _memory(args) -> None:
    from mmvpeft.datasets.synthetic.long_videos import write_long_shape_video
    folder = osp.join(args.work_dir, 'videos')
    os.makedirs(folder, exist_ok=True)
    short = osp.join(folder, 'mem_16s.mp4')
    long = osp.join(folder, 'mem_176s.mp4')
    warm = osp.join(folder, 'mem_warmup.mp4')
    write_long_shape_video(warm, 8.0, (2, 5), size=(256, 256), seed=9)
    write_long_shape_video(short, 16.0, (10, 14), size=(256, 256), seed=1)
    write_long_shape_video(long, 176.0, (166, 170), size=(256, 256), seed=1)
    longer = osp.join(folder, 'mem_352s.mp4')
    write_long_shape_video(longer, 352.0, (340, 344), size=(256, 256), seed=1)
    names = (('16 s (trained length)', short), ('176 s (11x)', long), ('352 s (22x)', longer))
    results = {}
    for mode in ('stream', 'decode-all'):
        for name, path in names:
            out = subprocess.run([sys.executable, __file__, '--measure', mode, '--video', path,
                                  '--warmup', warm], check=True, capture_output=True, text=True)
            m = json.loads(out.stdout.strip().splitlines()[-1])
            results[(mode, name)] = m
            print(f'memory {mode:10s} {name:22s}: peak RSS {m["peak_mib"]:.0f} MiB, rise '
                  f'during predict {m["rise_mib"]:.1f} MiB ({m["how"]}), tracemalloc peak '
                  f'{m["tracemalloc_mib"]:.1f} MiB', flush=True)
    for mode in ('test-stream', 'test-whole'):  # tools/test.py (long_video.stream=False)
        for dur in (16, 176, 352):
            out = subprocess.run([sys.executable, __file__, '--measure', mode, '--duration',
                                  str(dur), '--work-dir', args.work_dir], check=True,
                                 capture_output=True, text=True)
            m = json.loads(out.stdout.strip().splitlines()[-1])
            print(f'memory tools/test.py {mode[5:]:6s} {dur:3d} s: peak RSS {m["peak_mib"]:.0f} '
                  f'MiB, rise during the test loop {m["rise_mib"]:.1f} MiB', flush=True)
    for mode in ('stream', 'decode-all'):
        a = results[(mode, names[0][0])]
        for name, _ in names[1:]:
            b = results[(mode, name)]
            print(f'memory {mode}: {name} / trained length: peak RSS '
                  f'x{b["peak_mib"] / a["peak_mib"]:.2f}, tracemalloc '
                  f'x{b["tracemalloc_mib"] / max(a["tracemalloc_mib"], 1e-3):.2f}, rise '
                  f'{a["rise_mib"]:.1f} -> {b["rise_mib"]:.1f} MiB', flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--work-dir', default='work_dirs/long_video')
    p.add_argument('--videos', type=int, default=5, help='long videos of each kind')
    p.add_argument('--feature-epochs', type=int, default=40)
    p.add_argument('--frame-epochs', type=int, default=60)
    p.add_argument('--skip-train', action='store_true',
                   help='reuse the adapters of an earlier run in --work-dir')
    p.add_argument('--skip-memory', action='store_true')
    p.add_argument('--only', choices=['features', 'frames'],
                   help='train and ground one kind only (no memory part either)')
    p.add_argument('--frame-config', default=osp.join(ROOT, 'configs/demo/read_long_demo.py'),
                   help='the frame model: a config on 16 s moving-shape videos of 1 s clips')
    p.add_argument('--measure', choices=['stream', 'decode-all', 'test-stream', 'test-whole'],
                   help=argparse.SUPPRESS)
    p.add_argument('--duration', type=float, help=argparse.SUPPRESS)
    p.add_argument('--video', help=argparse.SUPPRESS)
    p.add_argument('--warmup', help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.measure:
        return (_measure_test if args.measure.startswith('test') else _measure)(args)
    os.makedirs(args.work_dir, exist_ok=True)
    feat_dir, frame_dir = osp.join(args.work_dir, 'features'), osp.join(args.work_dir, 'frames')
    feat_adapter = osp.join(feat_dir, 'adapter_latest.safetensors')
    frame_adapter = osp.join(frame_dir, 'adapter_latest.safetensors')
    if args.only != 'frames':
        if not args.skip_train:
            feat_adapter = _train(osp.join(ROOT, 'configs/demo/grounding_demo.py'), feat_dir,
                                  args.feature_epochs)
        _features(args, feat_adapter)
    if args.only != 'features':
        if not args.skip_train:
            frame_adapter = _train(args.frame_config, frame_dir, args.frame_epochs)
        _frames(args, frame_adapter)
    if not args.skip_memory and args.only is None:
        _memory(args)


if __name__ == '__main__':
    main()
