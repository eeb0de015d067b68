"""Make the answer vocabulary file of open-ended QA once, before training.

    python tools/build_answer_vocab.py ANN_FILE OUT_FILE [--top-k 1500]
    python tools/build_answer_vocab.py data/msrvtt_qa/train_qa.json \
        data/msrvtt_qa/answer_vocab_top1500.json

Counts the normalised answers of the training annotations (a JSON list or JSON lines of
records with an ``"answer"``), keeps the ``top_k`` most frequent (ties by the answer
string) and writes them with their sha256 digest. The QA model reads only this file (its
``answer_vocab.file``) and its head has ``num_answers`` outputs: set ``model.num_answers``
to the size printed here. The datasets make the same file on first use when it is missing;
an existing file built from another annotation file or ``top_k`` is an error, not rebuilt.
"""
import argparse
import os.path as osp
import sys

from mmvpeft.datasets.qa.answer_vocab import build_answer_vocab


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Build the answer vocabulary file of QA')
    parser.add_argument('ann_file', help='training annotation file')
    parser.add_argument('out_file', help='vocabulary JSON file to write')
    parser.add_argument('--top-k', type=int, default=1500, help='answers kept (default 1500)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not osp.isfile(args.ann_file):
        print(f'error: annotation file not found: {args.ann_file}', file=sys.stderr)
        return 2
    existed = osp.isfile(args.out_file)
    vocab = build_answer_vocab(source=args.ann_file, top_k=args.top_k, file=args.out_file)
    print(f'{"kept" if existed else "wrote"} {args.out_file}: {len(vocab)} answers, sha256 '
          f'{vocab.digest.hex()}; set model.num_answers={len(vocab)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
