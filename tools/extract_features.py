"""Turn a folder of videos into CLIP clip features (and query text features) in the public
layout the feature configs read.

    python tools/extract_features.py VIDEO_DIR OUT_DIR [--ann ANN.jsonl]
        [--model ViT-B-32] [--pretrained openai] [--model-cfg tiny.json]
        [--clip-len 2.0] [--frames-per-clip 1] [--batch-size 64] [--device cuda]
        [--launcher none|pytorch|slurm]
    bash tools/dist_extract.sh NUM_PROCS VIDEO_DIR OUT_DIR [ARGS...]   # torchrun

Writes OUT_DIR/clip_features/{vid}.npz['features'] (T, E), one row per clip, and, with
--ann, OUT_DIR/clip_text_features/qid{qid}.npz['last_hidden_state'] (L, W). Rerunning skips
finished videos; unreadable videos are reported at the end (and in extract_report.json).
With a launcher, each process takes every W-th video and query (gloo on CPU, NCCL on GPUs);
the files are the same as one process writes.
"""
import argparse
import json
import sys

from mmvpeft.apis import destroy_distributed
from mmvpeft.apis.feature_extraction import extract_features
from mmvpeft.utils.dist import init_tool_distributed


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Extract CLIP clip and text features')
    parser.add_argument('video_dir', help='folder of videos')
    parser.add_argument('out_dir', help='output root')
    parser.add_argument('--ann', help='JSON-lines annotations (qid, query) for text features')
    parser.add_argument('--model', default='ViT-B-32', help='open_clip model name')
    parser.add_argument('--pretrained', default='openai',
                        help="open_clip tag or local weight file; 'none' for random weights")
    parser.add_argument('--model-cfg', help='JSON file of an open_clip model config (instead '
                        'of --model), e.g. a tiny model for tests')
    parser.add_argument('--clip-len', type=float, default=2.0, help='seconds per feature row')
    parser.add_argument('--frames-per-clip', type=int, default=1)
    parser.add_argument('--batch-size', type=int, default=64, help='frames per forward pass')
    parser.add_argument('--device', help='default: cuda when available, else cpu')
    parser.add_argument('--max-videos', type=int, help='stop after N newly extracted videos')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='share the videos among processes (torchrun or slurm)')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0,
                        help=argparse.SUPPRESS)  # set by torch.distributed.launch
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    rank = init_tool_distributed(args.launcher)
    try:
        return _run(args, rank)
    finally:
        destroy_distributed()


def _run(args, rank: int):
    model_cfg = None
    if args.model_cfg:
        with open(args.model_cfg) as f:
            model_cfg = json.load(f)
    report = extract_features(
        args.video_dir, args.out_dir, ann_file=args.ann, model_name=args.model,
        pretrained=None if args.pretrained.lower() == 'none' or model_cfg else args.pretrained,
        model_cfg=model_cfg, clip_len=args.clip_len, frames_per_clip=args.frames_per_clip,
        batch_size=args.batch_size, device=args.device,
        progress=not args.no_progress and rank == 0, max_videos=args.max_videos)
    if rank != 0:
        return report
    print(f'extracted {len(report["extracted"])} video(s), skipped {len(report["skipped"])} '
          f'already done, {report["queries"]} query(ies), {report["seconds"]} s on '
          f'{report["device"]}')
    if report['failed']:
        print(f'{len(report["failed"])} unreadable video(s):', file=sys.stderr)
        for vid, reason in report['failed'].items():
            print(f'  {vid}: {reason}', file=sys.stderr)
    return report


if __name__ == '__main__':
    main()
