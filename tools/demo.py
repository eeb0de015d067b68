"""Ask a trained grounding model where a query happens in a video; draw the answer.

    python tools/demo.py VIDEO "QUERY" --config CONFIG --checkpoint CKPT --out timeline.png
                         [--gt START END ...] [--top-k 3] [--device cpu|cuda]
                         [--window CLIPS [--stride CLIPS]]

Prints the ranked windows (seconds, score) and writes a timeline PNG: frame thumbnails, the
best windows with their scores, the per-clip saliency curve, and the ground truth when
``--gt`` is given. CKPT is an adapter ``.safetensors`` file (training writes
``adapter_latest.safetensors`` in its work dir), an MMEngine ``.pth``, or ``none``.

A video longer than the model was trained on: ``--window N`` (the trained length in clips)
predicts it in overlapping windows of ``N`` clips at the config's clip length, decoded
window by window with a progress bar, and stitched (the config's ``long_video`` switch).

The model is the one training validated (random-weight towers come from the config's
``init_seed``), so the same arguments always print the same windows. A blank query, or a
``--gt`` window outside the video, is refused with an error naming the argument.
"""
import argparse
import os
import os.path as osp

import cv2
import numpy as np

from mmvpeft.apis import init_grounder
from mmvpeft.apis.config_checks import CfgOptionsAction
from mmvpeft.apis.inference import check_gt_windows, check_query
from mmvpeft.visualization import draw_timeline, read_thumbnails


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Ground a query in a video and draw it')
    parser.add_argument('video', help='video file')
    parser.add_argument('query', help='the text query')
    parser.add_argument('--config', help='config file (optional with an adapter file)')
    parser.add_argument('--checkpoint', default='none',
                        help='adapter .safetensors, .pth checkpoint, or none')
    parser.add_argument('--out', default='timeline.png', help='output PNG')
    parser.add_argument('--gt', nargs=2, type=float, action='append', metavar=('START', 'END'),
                        help='a ground-truth window in seconds (repeatable)')
    parser.add_argument('--top-k', type=int, default=3, help='windows drawn')
    parser.add_argument('--thumbnails', type=int, default=6, help='frames shown')
    parser.add_argument('--device', help='cpu or cuda (default: cuda when available)')
    parser.add_argument('--window', type=int, metavar='CLIPS',
                        help='long videos: predict in overlapping windows of this many clips '
                             '(the trained length), streamed and stitched')
    parser.add_argument('--stride', type=int, metavar='CLIPS',
                        help='clips between window starts (default: half the window)')
    parser.add_argument('--allow-base-mismatch', action='store_true',
                        help='load a checkpoint trained on another frozen base (a warning '
                        'instead of an error)')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='override config entries')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    check_query(args.query, 'query (the second argument)')  # before building anything
    if args.stride and not args.window:
        raise ValueError('--stride needs --window')
    long_video = dict(mode='sliding', window=args.window, stride=args.stride,
                      progress=True) if args.window else None
    grounder = init_grounder(args.config, args.checkpoint, args.device, args.cfg_options,
                             long_video=long_video,
                             allow_base_mismatch=args.allow_base_mismatch)
    result = grounder.predict(args.video, args.query)
    gt = check_gt_windows(args.gt, result['duration'], result['clip_len'], what='--gt')
    print(f'{args.video}: "{args.query}" ({result["duration"]:.1f} s)')
    for k, (s, e, score) in enumerate(result['windows'][:max(args.top_k, 5)], 1):
        print(f'  {k}. {s:7.2f} - {e:7.2f} s  score {score:.3f}')
    n = max(0, args.thumbnails)
    times = ((np.arange(n) + 0.5) * result['duration'] / n).tolist() if n else []
    img = draw_timeline(result['duration'], result['windows'], result['saliency'],
                        result['clip_len'], read_thumbnails(args.video, times),
                        gt_windows=gt or None, query=args.query, top_k=args.top_k)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    if not cv2.imwrite(args.out, img):
        raise OSError(f'cannot write {args.out}')
    print(f'wrote {args.out}')
    return result


if __name__ == '__main__':
    main()
