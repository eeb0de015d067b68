"""Training-step time, peak memory and trainable parameters of a config, plus the PVLA
solver against POT on the same batch shapes.

    python tools/benchmark.py CONFIG [--synthetic] [--batch-size 8] [--num-clips 128]
                                     [--num-words 16] [--steps 5] [--device cpu|cuda]
                                     [--prefix-cache] [--amp] [--compile]
                                     [--cfg-options k=v ...]
    python tools/benchmark.py CONFIG --synthetic --memory [--clips 32 64 128]
                                     [--batch-size 1] [--memory-in-process]

``--prefix-cache`` alternates steps on the decoded batch and on the same batch as a float16
frozen-prefix cache feeds it (tools/build_prefix_cache.py), and prints both medians and their
ratio; decoding is excluded from both (the batch is decoded once). ``--amp`` runs forward and
losses under bfloat16 autocast (CPU or CUDA); ``--compile`` compiles every tower block with
``torch.compile``. The PVLA line times the solver at the batch's state shapes, and PVLA's
share of a step.

``--memory`` (with ``--synthetic``) measures one training step per setting instead of timing:
clips (frames) per video from ``--clips``, activation checkpointing off / on in every part that
has the switch, and decoded frames / a float16 frozen-prefix cache. Per setting it prints the
bytes the forward keeps for backward (a line with "saved"; counted exactly through
saved-tensor hooks, model weights left out, so the figure is the same on any machine of one
device type), the peak resident memory of the process (``ru_maxrss``; each setting runs in a
fresh process unless ``--memory-in-process``) and on CUDA ``torch.cuda.max_memory_allocated``,
then a Markdown table of all settings.

``--synthetic`` feeds random inputs of the config's shape (frames at the pipeline's image
size, or clip features of the encoder's width) instead of reading the dataset, so a config
can be measured before its data is downloaded. On a shared 2-core machine prefix
``OMP_NUM_THREADS=1``: contended OpenMP threads make timings swing by 10x or more.
"""
import argparse
import importlib.util
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmvpeft.apis.config_checks import CfgOptionsAction
from mmvpeft.apis.benchmarking import benchmark_model


def dataset_batch(cfg, batch_size: int, device) -> tuple:
    from mmengine.runner import Runner
    loader_cfg = cfg.train_dataloader.copy()
    loader_cfg.batch_size = batch_size
    batch = next(iter(Runner.build_dataloader(loader_cfg)))
    return {k: v.to(device) for k, v in batch['inputs'].items()}, batch['data_samples']


def run(cfg, batch_size, num_clips, num_words, steps, device, synthetic, prefix_cache=False,
        amp=False, compile=False) -> dict:
    init_default_scope(cfg.get('default_scope', 'mmvpeft'))
    given = None if synthetic else dataset_batch(cfg, batch_size, torch.device(device))
    result = benchmark_model(cfg, batch_size, num_clips, num_words, steps, device, given,
                             prefix_cache=prefix_cache, amp=amp, compile=compile)
    model, inputs = result.pop('model'), result.pop('inputs')
    if getattr(model, 'pvla_loss', None) is not None and hasattr(model, 'extract_feat'):
        with torch.no_grad():
            enc = model.extract_feat(inputs)
        b, nv, r = enc['video_states'].shape
        bench = _load_pvla_benchmark()
        result['pvla'] = bench.run_benchmark(batch=b, nv=nv, nl=enc['text_states'].shape[1],
                                             dim=r, iters=model.pvla_loss.num_iters,
                                             eps=model.pvla_loss.eps, mass=model.pvla_loss.mass,
                                             device=device, threads=1,
                                             tol=model.pvla_loss.tol or 1e-4)
        result['pvla_loss_ms'] = _time_pvla_loss(model, enc, device)
    return result


def _time_pvla_loss(model, enc, device, repeat: int = 5) -> float:
    """Median ms of the configured PVLA loss, forward and backward, on the batch's states."""
    import statistics
    import time
    v = enc['video_states'].detach().requires_grad_()
    t = enc['text_states'].detach().requires_grad_()
    times = []
    for i in range(repeat + 1):
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        start = time.perf_counter()
        model.pvla_loss(v, t, enc['video_mask'], enc['text_mask']).backward()
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        if i:
            times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def _load_pvla_benchmark():
    path = osp.join(osp.dirname(osp.abspath(__file__)), 'benchmark_pvla.py')
    spec = importlib.util.spec_from_file_location('mmvpeft_benchmark_pvla', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Benchmark a mmvpeft config')
    parser.add_argument('config')
    parser.add_argument('--synthetic', action='store_true',
                        help='random inputs of the config shape instead of the dataset')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--num-clips', type=int, default=128, help='clips per video (synthetic)')
    parser.add_argument('--num-words', type=int, default=16, help='query tokens (synthetic)')
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--prefix-cache', action='store_true',
                        help='also time steps fed from a (float16) frozen-prefix cache, '
                        'interleaved with the uncached ones')
    parser.add_argument('--amp', action='store_true', help='bfloat16 autocast (CPU or CUDA)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile every tower block')
    parser.add_argument('--decode-video', metavar='VIDEO',
                        help='also time decoding VIDEO with the config\'s transforms '
                        '(num-clips clips) against loading its float16 prefix-cache file')
    parser.add_argument('--memory', action='store_true',
                        help='measure memory per setting (clips x checkpointing x prefix '
                        'cache) instead of timing; needs --synthetic')
    parser.add_argument('--clips', type=int, nargs='+', default=[32, 64, 128],
                        help='clips (frames) per video for --memory')
    parser.add_argument('--memory-in-process', action='store_true',
                        help='run the --memory settings in this process (faster; the peak '
                        'RSS is then the whole run\'s)')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction)
    return parser.parse_args(argv)


def _mib(n: float) -> str:
    return f'{n / 2**20:.1f} MiB'


def memory_main(args) -> list:
    """``--memory``: one line per setting as it finishes, then a Markdown table."""
    from mmvpeft.apis.benchmarking import memory_settings
    if not args.synthetic:
        raise SystemExit('--memory measures synthetic batches: add --synthetic')
    print(f'config: {args.config} | device: {args.device} | batch {args.batch_size} | '
          f'torch {torch.__version__}')
    rss_what = ('ru_maxrss of a fresh process per setting, building the model included'
                if not args.memory_in_process else 'ru_maxrss of this whole run so far')

    def show(r):
        head = (f'clips {r["num_clips"]:>4} | checkpointing {"on " if r["checkpointing"] else "off"}'
                f' | prefix cache {"on " if r["prefix_cache"] else "off"}')
        if 'error' in r:
            print(f'{head}: not run ({r["error"]})')
            return
        line = (f'{head}: saved for backward {_mib(r["saved_bytes"])} '
                f'({r["saved_bytes"]:,} bytes) | peak RSS {r["peak_rss_mib"]:.0f} MiB '
                f'({rss_what}; {r["rss_before_mib"]:.0f} MiB before the step)')
        if 'peak_allocated_mib' in r:
            line += f' | peak CUDA allocated {r["peak_allocated_mib"]:.0f} MiB'
        print(line, flush=True)

    results = memory_settings(args.config, args.cfg_options, args.clips, args.batch_size,
                              args.num_words, args.device,
                              fresh_process=not args.memory_in_process, on_result=show)
    ok = [r for r in results if 'error' not in r]
    by_key = {(r['num_clips'], r['prefix_cache'], r['checkpointing']): r for r in ok}
    for (n, cache, ckpt), r in sorted(by_key.items()):
        plain = by_key.get((n, cache, False))
        if ckpt and plain and r['saved_bytes']:
            print(f'clips {n}, prefix cache {"on" if cache else "off"}: checkpointing saved '
                  f'{plain["saved_bytes"] / r["saved_bytes"]:.2f}x fewer bytes for backward')
    cuda = any('peak_allocated_mib' in r for r in ok)
    print()
    print('| clips | checkpointing | prefix cache | saved for backward (MiB) | peak RSS (MiB) |'
          + (' peak CUDA allocated (MiB) |' if cuda else ''))
    print('| --- | --- | --- | --- | --- |' + (' --- |' if cuda else ''))
    for r in ok:
        row = (f'| {r["num_clips"]} | {"on" if r["checkpointing"] else "off"} | '
               f'{"on" if r["prefix_cache"] else "off"} | {r["saved_bytes"] / 2**20:.1f} | '
               f'{r["peak_rss_mib"]:.0f} |')
        if cuda:
            row += f' {r.get("peak_allocated_mib", float("nan")):.0f} |'
        print(row)
    return results


def main(argv=None):
    args = parse_args(argv)
    if args.memory:
        return memory_main(args)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    r = run(cfg, args.batch_size, args.num_clips, args.num_words, args.steps, args.device,
            args.synthetic, args.prefix_cache, args.amp, args.compile)
    print(f'config: {args.config} | device: {r["device"]} ({r["hardware"]}) | '
          f'torch {torch.__version__}')
    print(f'inputs: {r["input_shapes"]}')
    mode = ', '.join(m for m, on in (('bf16 autocast', r['amp']),
                                     (f'{r["compiled_blocks"]} blocks compiled',
                                      r['compiled_blocks'])) if on) or 'fp32, eager'
    print(f'training step (forward + backward + AdamW; {mode}): median '
          f'{r["step_ms_median"]:.1f} ms, min {r["step_ms_min"]:.1f} ms over {args.steps} steps')
    if 'cache_speedup' in r:
        print(f'with the frozen-prefix cache (float16, blocks from {r["prefix_start"]}): median '
              f'{r["cached_step_ms_median"]:.1f} ms, min {r["cached_step_ms_min"]:.1f} ms '
              f'(interleaved) -> {r["cache_speedup"]:.2f}x')
    if 'peak_mem_mib' in r:
        print(f'peak GPU memory: {r["peak_mem_mib"]:.0f} MiB')
    else:
        print(f'peak process RSS: {r["peak_rss_mib"]:.0f} MiB '
              f'(+{r["peak_rss_growth_mib"]:.0f} MiB during the steps)')
    if args.decode_video:
        from mmvpeft.apis.benchmarking import decode_vs_cache
        d = decode_vs_cache(cfg, args.decode_video, args.num_clips)
        r['decode'] = d
        per_batch = args.batch_size * (d['decode_s'] - d['cache_load_s'])
        print(f'decoding {d["num_clips"]} clips of {args.decode_video}: {d["decode_s"]:.3f} s; '
              f'loading its prefix-cache file ({d["cache_file_mib"]:.1f} MiB float16): '
              f'{d["cache_load_s"]:.3f} s -> {per_batch:.2f} s saved per batch of '
              f'{args.batch_size} (the dataloader workers\' time, not the step\'s)')
    print(f'trainable parameters: {r["trainable"]:,} of {r["total"]:,} '
          f'({100 * r["trainable"] / r["total"]:.3f}%)')
    print(r['param_table'])
    if 'pvla' in r:
        p = r['pvla']
        print(f'PVLA solver on B={p["batch"]} Nv={p["nv"]} Nl={p["nl"]} r={p["dim"]}, '
              f'{p["iters"]} iterations ({p["device"]}, 1 thread): ours {p["ours_auto_ms_median"]:.1f} ms '
              f'({p["auto_domain"]} domain), POT looped {p["pot_loop_ms_median"]:.1f} ms '
              f'-> {p["speedup_ours_auto"]:.1f}x; max |plan - POT| '
              f'{p["max_abs_diff_ours_auto"]:.1e}')
        print(f'PVLA loss as configured (forward + backward): {r["pvla_loss_ms"]:.1f} ms = '
              f'{100 * r["pvla_loss_ms"] / r["step_ms_median"]:.2f}% of the step')
    return r


if __name__ == '__main__':
    main()
