"""Compute the frozen-prefix states of a config's videos and texts once, for training from
them (``prefix_cache=CACHE_DIR`` in the config or ``--cfg-options prefix_cache=CACHE_DIR``).

    python tools/build_prefix_cache.py CONFIG CACHE_DIR [--dtype float16|float32]
        [--grid-fps FPS] [--loaders train_dataloader val_dataloader test_dataloader]
        [--device cuda] [--overwrite] [--cfg-options k=v ...] [--launcher none|pytorch|slurm]
    TOOL=build_prefix_cache bash tools/dist_extract.sh NUM_PROCS CONFIG CACHE_DIR [ARGS...]

The states entering the first block any PETL method touches (READ in the last 4 of 12
blocks: block 8) depend only on the frame / the tokens, so training from them gives the same
losses and gradients (to float32 rounding with float32, within fp16 rounding with the float16
default). Every task works the same way: each video's frames are stored on a fixed grid
(every decoded frame, or ``--grid-fps`` frames per second) and the config's own samplers
choose among them when training (random segments) and testing (uniform), so one cache serves
both; every distinct token sequence (query, caption, question, transcript chunk) is stored
once, named by its token ids. Rerunning resumes: finished files are kept (each is written
atomically). A cache built with another model, pretrained tag, image size, decoding, resize
or crop, grid or start block is refused; a config whose methods touch block 0 (LoRA
everywhere, full fine-tuning, VPT-deep) cannot have one, and this tool says so. With a
launcher, the processes share the videos and texts (gloo on CPU, NCCL on GPUs) and write the
files one process writes.
"""
import argparse
import copy

from mmvpeft.apis import destroy_distributed
from mmvpeft.apis.config_checks import (CfgOptionsAction, apply_knob_options, check_option_keys,
                                         read_config)
from mmvpeft.apis.prefix_cache import build_prefix_cache
from mmvpeft.utils.dist import init_tool_distributed


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Build a frozen-prefix cache for a config')
    parser.add_argument('config')
    parser.add_argument('cache_dir')
    parser.add_argument('--dtype', choices=['float16', 'float32'], default='float16')
    parser.add_argument('--loaders', nargs='+',
                        default=['train_dataloader', 'val_dataloader', 'test_dataloader'])
    parser.add_argument('--device', help='default: cuda when available, else cpu')
    parser.add_argument('--frames-per-batch', type=int, default=256)
    parser.add_argument('--grid-fps', type=float,
                        help='cache frames at this rate (default: every decoded frame)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace a cache built with another key')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='share the videos among processes (torchrun or slurm)')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0,
                        help=argparse.SUPPRESS)  # set by torch.distributed.launch
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    rank = init_tool_distributed(args.launcher)
    try:
        return _run(args, rank)
    finally:
        destroy_distributed()


def _run(args, rank: int):
    cfg = read_config(args.config)  # knobs of a child config reach their fields
    if args.cfg_options:  # as tools/train.py reads them: data_root=... moves the datasets
        check_option_keys(cfg, args.cfg_options, args.config)
        before = copy.deepcopy(cfg)
        cfg.merge_from_dict(args.cfg_options)
        apply_knob_options(cfg, before, args.cfg_options)
    cfg.pop('prefix_cache', None)  # the cache is built from the decoding pipeline
    r = build_prefix_cache(cfg, args.cache_dir, dtype=args.dtype, loaders=args.loaders,
                           device=args.device, frames_per_batch=args.frames_per_batch,
                           progress=not args.no_progress and rank == 0,
                           overwrite=args.overwrite, grid_fps=args.grid_fps)
    if rank != 0:
        return r
    print(f'prefix cache {args.cache_dir}: start blocks {r["start_block"]}, {r["videos"]} '
          f'video(s) ({r["frames"]} frames) and {r["texts"]} text(s) written, '
          f'{r["skipped"]} already cached, {r["bytes"] / 2**20:.1f} MiB, {r["seconds"]} s '
          f'on {r["device"]}')
    return r


if __name__ == '__main__':
    main()
