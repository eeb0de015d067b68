"""Draw training losses and validation metrics of one or more work dirs, overlaid.

    python tools/analysis/plot_curves.py WORK_DIR [WORK_DIR ...] --keys loss R1@0.5
                                         [--out curves.png|.svg] [--labels A B ...]

One panel per key; every run is a line labelled with its work dir's folder name. Training
keys (``loss``, ``loss_cls``, ``lr``, ``grad_norm``) are drawn against the iteration,
validation metrics (``R1@0.5``, ``t2v/R@1``, ``CIDEr``, ``accuracy``) against the epoch.
A key logged by both (``time``) is the training one unless written ``val:time``. A key that
no run logged is an error that lists the keys that exist.
"""
import argparse

from mmvpeft.visualization.curves import plot_curves


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Plot training / validation curves')
    parser.add_argument('work_dirs', nargs='+', help='tools/train.py work dirs')
    parser.add_argument('--keys', nargs='+', default=['loss'],
                        help='logged entries, one panel each (default: loss)')
    parser.add_argument('--out', default='curves.png', help='output .png, .svg or .pdf')
    parser.add_argument('--labels', nargs='+', help='legend names, one per work dir')
    parser.add_argument('--columns', type=int, default=2, help='panels per row')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        data = plot_curves(args.work_dirs, args.keys, args.out, args.labels, args.columns)
    except (KeyError, FileNotFoundError) as e:  # a plain message, not a traceback
        raise SystemExit(f'plot_curves: {e.args[0] if isinstance(e, KeyError) else e}')
    for key, runs in data.items():
        for work_dir, (phase, steps, values) in runs.items():
            print(f'{key} ({phase}) {work_dir}: {len(values)} points, last {values[-1]:.4g} '
                  f'at {"iteration" if phase == "train" else "step"} {steps[-1]:g}')
    print(f'wrote {args.out}')
    return data


if __name__ == '__main__':
    main()
