"""Evaluate a moment-retrieval / highlight-detection submission with moment_detr's metrics.

    python tools/eval_moments.py PRED.jsonl --gt GT.jsonl [--out metrics.json]
                                 [--protocol auto|qvhighlights|youtube|tvsum|none]
                                 [--decimals 2]

(``--pred PRED.jsonl`` is accepted too.) QVHighlights test split: ``--gt
../shared/data/annotations/qvhighlight/highlight_test_with_gt.jsonl`` (the test ground truth
the dataset's authors released after the evaluation server shut down; see
docs/evaluation.md).

Predicted windows that pass the video's ends are scored by plain tIoU, as the official
QVHighlights evaluator does (one warning counts them); a submission without
``pred_saliency_scores`` gets its moment-retrieval metrics only.

GT.jsonl is an annotation file (QVHighlights, TaCoS, ... or YouTube Highlights / TVSum);
PRED.jsonl a submission (``tools/test.py CONFIG CKPT --dump PRED.jsonl`` writes one). Prints
``{"brief": {...}, "full": {...}}`` as JSON, with the QVHighlights evaluator's metric names
(``MR-full-R1@0.5``, ``MR-full-mAP``, ``HL-min-VeryGood-mAP``, ...). The metrics are the ones
training reports (mmvpeft.evaluation.functional.submission.eval_submission).
"""
import argparse
import json
import sys

from mmvpeft.evaluation.functional.submission import (SubmissionError, eval_submission,
                                                      load_jsonl)
from mmvpeft.utils.fileio import atomic_write


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate a moment_detr-style submission')
    parser.add_argument('--gt', required=True, help='ground-truth annotation .jsonl')
    parser.add_argument('pred_file', nargs='?', metavar='PRED', help='submission .jsonl')
    parser.add_argument('--pred', help='submission .jsonl (same as the positional PRED)')
    parser.add_argument('--out', help='also write the metrics JSON here')
    parser.add_argument('--protocol', default='auto',
                        choices=['auto', 'qvhighlights', 'youtube', 'tvsum', 'none'],
                        help='highlight-detection protocol (auto: from the GT fields)')
    parser.add_argument('--clip-length', type=float, default=2.0,
                        help='seconds per saliency clip (QVHighlights: 2)')
    parser.add_argument('--decimals', type=int, default=2,
                        help='round figures as moment_detr prints them; -1 keeps them unrounded')
    args = parser.parse_args(argv)
    if (args.pred is None) == (args.pred_file is None):
        parser.error('give the submission once: as PRED or as --pred')
    args.pred = args.pred or args.pred_file
    return args


def _round(obj, decimals):
    if decimals < 0:
        return obj
    if isinstance(obj, dict):
        return {k: _round(v, decimals) for k, v in obj.items()}
    return round(obj, decimals) if isinstance(obj, float) else obj


def main(argv=None):
    args = parse_args(argv)
    try:
        metrics = eval_submission(load_jsonl(args.pred, 'submission'),
                                  load_jsonl(args.gt, 'ground truth'),
                                  hd_protocol=args.protocol, clip_length=args.clip_length)
    except (SubmissionError, FileNotFoundError) as e:
        print(f'eval_moments: {e}', file=sys.stderr)
        sys.exit(2)
    metrics = _round(metrics, args.decimals)
    text = json.dumps(metrics, indent=2)
    print(text)
    if args.out:
        with atomic_write(args.out) as f:
            f.write(text + '\n')
    return metrics


if __name__ == '__main__':
    main()
