"""Evaluate a checkpoint, optionally writing a JSON-lines submission file.

    python tools/test.py CONFIG CHECKPOINT [--dump preds.jsonl] [--work-dir DIR]
                                           [--cfg-options k=v ...] [--launcher ...]
                                           [--allow-base-mismatch] [--allow-partial-load]
                                           [--share-work-dir] [--cpu-threads N]
                                           [--show-dir DIR] [--show-num N]
"""
import argparse
import os.path as osp

from mmvpeft.apis import (CfgOptionsAction, add_submission_dump, build_runner, claim_work_dir,
                          configure_cpu_threads, destroy_distributed,
                          load_config)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test a mmvpeft model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file, or "none" to evaluate the model '
                        'as built (pretrained backbones, untrained head): a reference point')
    parser.add_argument('--work-dir', help='folder for logs')
    parser.add_argument('--dump', metavar='FILE.jsonl',
                        help='write predictions as JSON lines in the task\'s format: '
                             'grounding, the moment_detr / QVHighlights submission (qid, query, '
                             'vid, pred_relevant_windows, pred_saliency_scores); video QA, qid, '
                             'vid, question, pred_answer, answer; captioning / summarization, '
                             'id, video, prediction, references')
    parser.add_argument('--show-dir', metavar='DIR',
                        help='draw the model\'s predictions as PNGs into DIR (per task: '
                             'grounding timelines, retrieval rankings, captions, QA answers)')
    parser.add_argument('--show-num', type=int, default=20, metavar='N',
                        help='at most N pictures with --show-dir (default 20)')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='override config entries')
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
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    checkpoint = None if args.checkpoint.lower() == 'none' else args.checkpoint
    if checkpoint and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
    cfg = load_config(args.config, args.work_dir, args.cfg_options, args.launcher,
                      load_from=checkpoint, allow_base_mismatch=args.allow_base_mismatch,
                      allow_partial_load=args.allow_partial_load)
    if args.dump:
        add_submission_dump(cfg, args.dump)
    configure_cpu_threads(cfg, args.cpu_threads)
    if args.show_dir:
        from mmvpeft.visualization import add_show_dir
        add_show_dir(cfg, args.show_dir, args.show_num)
    try:
        with claim_work_dir(cfg, args.share_work_dir, 'tools/test.py'):
            return build_runner(cfg).test()
    finally:
        destroy_distributed()


if __name__ == '__main__':
    main()
