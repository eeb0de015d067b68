"""Train a model from a config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [auto|PATH]] [--amp]
                                 [--cfg-options k=v ...] [--launcher none|pytorch|slurm]
                                 [--allow-base-mismatch] [--allow-partial-load]
                                 [--share-work-dir] [--cpu-threads N]
"""
import argparse

from mmvpeft.apis import (CfgOptionsAction, build_runner, claim_work_dir,
                          configure_cpu_threads, destroy_distributed,
                          load_config)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a mmvpeft model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--work-dir', help='folder for logs and checkpoints')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from PATH, or from the latest checkpoint in work-dir '
                             'when given without a value')
    parser.add_argument('--load-from', help='initialise weights from a checkpoint')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: AmpOptimWrapper on CUDA, bfloat16 autocast on '
                             'a CPU')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='override config entries, e.g. train_cfg.max_epochs=5')
    parser.add_argument('--allow-base-mismatch', action='store_true',
                        help='load a trainable-only checkpoint even if it was trained on other '
                             'frozen weights than the model has (a warning, not an error)')
    parser.add_argument('--allow-partial-load', action='store_true',
                        help='load a checkpoint whose weights do not all match the model')
    parser.add_argument('--share-work-dir', action='store_true',
                        help='write into the work dir even if another run holds it (no lock)')
    parser.add_argument('--cpu-threads', type=int, metavar='N',
                        help='torch threads of the main process on CPU (default: chosen '
                             'from the cores and loader workers, or OMP_NUM_THREADS)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0,
                        help=argparse.SUPPRESS)  # set by torch.distributed.launch
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.work_dir, args.cfg_options, args.launcher, args.amp,
                      args.resume, args.load_from,
                      allow_base_mismatch=args.allow_base_mismatch,
                      allow_partial_load=args.allow_partial_load)
    configure_cpu_threads(cfg, args.cpu_threads)
    try:
        with claim_work_dir(cfg, args.share_work_dir, 'tools/train.py'):
            build_runner(cfg).train()
    finally:
        destroy_distributed()


if __name__ == '__main__':
    main()
