"""Train a config on fractions of its training queries x seeds; print mean +- std of the
validation metrics per fraction, and plot metric vs fraction.

    python tools/low_resource.py CONFIG --fractions 0.1 0.3 1 --seeds 0 1
        [--metrics R1@0.5 mIoU] [--work-dir DIR] [--cfg-options k=v ...]

Each run uses ``train_subset=dict(fraction=F, seed=S)`` (seeded, stratified by video; the
kept qids are written to ``DIR/fracF_seedS/train_subset.json``) and ``randomness.seed=S``.
Writes ``DIR/low_resource_runs.json`` (every run's metrics), ``DIR/low_resource.json`` (the
summary) and ``DIR/low_resource.png`` (the plot).
"""
import argparse
import os.path as osp


from mmvpeft.apis.config_checks import CfgOptionsAction
from mmvpeft.apis.low_resource import format_table, plot_summary, run_low_resource, summarize
from mmvpeft.utils.fileio import write_json_atomic


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Low-resource protocol: fractions x seeds')
    parser.add_argument('config')
    parser.add_argument('--fractions', type=float, nargs='+', default=[0.1, 0.3, 1.0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    parser.add_argument('--metrics', nargs='+', default=['R1@0.5', 'mIoU'])
    parser.add_argument('--work-dir', help='default: work_dirs/low_resource_{config name}')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    name = osp.splitext(osp.basename(args.config))[0]
    work_dir = args.work_dir or osp.join('work_dirs', f'low_resource_{name}')
    rows = run_low_resource(args.config, args.fractions, args.seeds, work_dir,
                            args.cfg_options)
    summary = summarize(rows, args.metrics)
    table = format_table(summary, args.metrics)
    print(f'{name}: validation metrics (mean +- std over seeds {args.seeds})')
    print(table)
    write_json_atomic(osp.join(work_dir, 'low_resource.json'),
                      dict(config=args.config, seeds=args.seeds, summary=summary))
    png = plot_summary(summary, args.metrics, osp.join(work_dir, 'low_resource.png'),
                       title=f'{name}, {len(args.seeds)} seeds')
    print(f'wrote {osp.join(work_dir, "low_resource.json")} and {png}')
    return summary


if __name__ == '__main__':
    main()
