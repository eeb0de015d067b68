"""Evaluate a checkpoint, optionally writing a JSON-lines submission file.

    python tools/test.py CONFIG CHECKPOINT [--dump preds.jsonl] [--work-dir DIR]
                                           [--cfg-options k=v ...] [--launcher ...]
"""
import argparse
import os.path as osp

from mmengine.config import DictAction

from mmvpeft.apis import add_submission_dump, build_runner, destroy_distributed, load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test a mmvpeft model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='folder for logs')
    parser.add_argument('--dump', metavar='FILE.jsonl',
                        help='write predictions in the moment_detr / QVHighlights submission '
                             'format (qid, query, vid, pred_relevant_windows, '
                             'pred_saliency_scores)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0,
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
    cfg = load_config(args.config, args.work_dir, args.cfg_options, args.launcher,
                      load_from=args.checkpoint)
    if args.dump:
        add_submission_dump(cfg, args.dump)
    try:
        return build_runner(cfg).test()
    finally:
        destroy_distributed()


if __name__ == '__main__':
    main()
