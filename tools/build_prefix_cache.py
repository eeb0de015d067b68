"""Compute the frozen-prefix states of a config's videos and queries once, for training from
them (``prefix_cache=CACHE_DIR`` in the config or ``--cfg-options prefix_cache=CACHE_DIR``).

    python tools/build_prefix_cache.py CONFIG CACHE_DIR [--dtype float16|float32]
        [--loaders train_dataloader val_dataloader test_dataloader] [--device cuda]
        [--overwrite] [--cfg-options k=v ...]

The states entering the first block any PETL method touches (READ in the last 4 of 12
blocks: block 8) depend only on the frame / the query, so training from them gives the same
losses and gradients (exactly with float32, within fp16 rounding with the float16 default).
Rerunning resumes: finished files are kept (each is written atomically). A cache built with
another model, pretrained tag, image size, frame sampling, tokenizer or start block is refused;
a config whose methods touch block 0 (LoRA everywhere, full fine-tuning, VPT-deep) cannot
have one, and this tool says so.
"""
import argparse

from mmengine.config import Config, DictAction

from mmvpeft.apis.prefix_cache import build_prefix_cache


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Build a frozen-prefix cache for a config')
    parser.add_argument('config')
    parser.add_argument('cache_dir')
    parser.add_argument('--dtype', choices=['float16', 'float32'], default='float16')
    parser.add_argument('--loaders', nargs='+',
                        default=['train_dataloader', 'val_dataloader', 'test_dataloader'])
    parser.add_argument('--device', help='default: cuda when available, else cpu')
    parser.add_argument('--frames-per-batch', type=int, default=256)
    parser.add_argument('--overwrite', action='store_true',
                        help='replace a cache built with another key')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.pop('prefix_cache', None)  # the cache is built from the decoding pipeline
    r = build_prefix_cache(cfg, args.cache_dir, dtype=args.dtype, loaders=args.loaders,
                           device=args.device, frames_per_batch=args.frames_per_batch,
                           progress=not args.no_progress, overwrite=args.overwrite)
    print(f'prefix cache {args.cache_dir}: start blocks {r["start_block"]}, {r["videos"]} '
          f'video(s) and {r["queries"]} query(ies) written, {r["skipped"]} already cached, '
          f'{r["bytes"] / 2**20:.1f} MiB, {r["seconds"]} s on {r["device"]}')
    return r


if __name__ == '__main__':
    main()
