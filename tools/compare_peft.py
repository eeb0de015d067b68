"""Compare PEFT methods on one task config: trainable parameters, share, step time, memory.

    python tools/compare_peft.py CONFIG [--methods partial token_mixing read lora ...]
        [--batch-size 2] [--num-clips 8] [--num-words 16] [--steps 3] [--device cpu|cuda]
        [--work-dirs token_mixing=work_dirs/a read=work_dirs/b --metric t2v/R@1]
        [--cfg-options k=v ...]

Each method (a preset of ``mmvpeft.apis.peft_compare.METHOD_PRESETS``) replaces the
config's PEFT methods and runs on random inputs of the config's shape (``--num-clips``
frames or clips per video), each in a fresh process. With finished work dirs the table
adds their last logged ``--metric``. A method that does not fit the config's towers is
skipped, and one that fails is reported, in its row (the others are measured and kept);
``--out rows.json`` writes the rows too. On a shared 2-core machine prefix
``OMP_NUM_THREADS=1``: contended threads make timings swing.
"""
import argparse

import torch
from mmengine.config import DictAction

from mmvpeft.apis.config_checks import CfgOptionsAction
from mmvpeft.apis.peft_compare import METHOD_PRESETS, compare_methods, format_table
from mmvpeft.utils.fileio import write_json_atomic


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Compare PEFT methods on one config')
    parser.add_argument('config')
    parser.add_argument('--methods', nargs='+', default=list(METHOD_PRESETS),
                        choices=sorted(METHOD_PRESETS))
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--num-clips', type=int, default=8, help='frames/clips per video')
    parser.add_argument('--num-words', type=int, default=16)
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--work-dirs', nargs='+', action=DictAction, default=None,
                        help='METHOD=WORK_DIR pairs of finished runs')
    parser.add_argument('--metric', default=None, help='metric key read from the work dirs')
    parser.add_argument('--out', default=None,
                        help='also write the rows (skipped and failed ones included) to this '
                        '.json file')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    rows = compare_methods(args.config, args.methods, args.batch_size, args.num_clips,
                           args.num_words, args.steps, args.device, args.cfg_options,
                           args.work_dirs, args.metric)
    hardware = next((r['hardware'] for r in rows if 'hardware' in r), 'nothing measured')
    print(f'config: {args.config} | {hardware} | batch {args.batch_size}, '
          f'{args.num_clips} frames, {args.steps} timed steps | torch {torch.__version__}')
    print(format_table(rows, args.metric if args.work_dirs else None))
    if args.out:
        write_json_atomic(args.out, dict(config=args.config, hardware=hardware, rows=rows))
        print(f'wrote {args.out}')
    return rows


if __name__ == '__main__':
    main()
