"""Text-video retrieval metrics from a saved similarity matrix, under a named protocol.

    python tools/eval_retrieval.py SIM.npy [--text-to-video T2V.txt | --captions-per-video K]
                                   [--protocol coco|clip4clip|both] [--out metrics.json]
                                   [--decimals 2]

SIM is one of:

- a ``(num_texts, num_videos)`` matrix (``.npy``, ``.pt`` or ``.npz`` with key ``sim``);
  which video each text describes comes from ``--text-to-video`` (a ``.npy`` / ``.txt``
  of ``num_texts`` video indices, or key ``text_to_video`` in the ``.npz``),
  ``--captions-per-video K`` (texts in consecutive groups of K), or, when the matrix is
  square, text ``i`` describes video ``i``;
- a CLIP4Clip-style ``(num_videos, max_captions, num_videos)`` tensor whose padding rows
  are ``-inf`` or NaN: ``sim[i, c, j]`` is caption ``c`` of video ``i`` against video ``j``.

Prints ``{protocol: {"t2v/R@1": ..., ..., "v2t/MnR": ..., "rsum": ...}}`` as JSON. The
``clip4clip`` protocol's v2t is CLIP4Clip's multi-caption one (a video ranks its caption
group among all groups, MSVD's published figures); ``coco`` ranks a video's best caption
among all captions. See docs/evaluation.md.
"""
import argparse
import json
import os
import os.path as osp
import sys

import numpy as np
import torch

from mmvpeft.evaluation.functional.retrieval_metrics import PROTOCOLS, retrieval_metrics


class InputError(ValueError):
    """A similarity / mapping file that cannot be read as described; names the file."""


def _load_array(path, key=None):
    if not osp.isfile(path):
        raise InputError(f'{path}: file not found')
    ext = osp.splitext(path)[1].lower()
    try:
        if ext == '.npy':
            return np.load(path, allow_pickle=False), None
        if ext == '.npz':
            data = np.load(path, allow_pickle=False)
            if 'sim' not in data:
                raise InputError(f'{path}: the .npz needs a "sim" array (has {list(data)})')
            t2v = data['text_to_video'] if 'text_to_video' in data else None
            return data['sim'], t2v
        if ext in ('.pt', '.pth'):
            obj = torch.load(path, map_location='cpu', weights_only=True)
            if isinstance(obj, dict):
                if 'sim' not in obj:
                    raise InputError(f'{path}: the dict needs a "sim" tensor (has {list(obj)})')
                return torch.as_tensor(obj['sim']).numpy(), obj.get('text_to_video')
            return torch.as_tensor(obj).numpy(), None
        if ext == '.txt':
            return np.loadtxt(path, dtype=np.int64, ndmin=1), None
    except InputError:
        raise
    except Exception as e:  # numpy / torch raise many types on a bad file
        raise InputError(f'{path}: not readable as an array ({e})') from e
    raise InputError(f'{path}: unknown extension {ext!r} (use .npy, .npz, .pt or .txt)')


def load_similarity(path, text_to_video=None, captions_per_video=None):
    """``(sim (num_texts, num_videos) float64 tensor, text_to_video (num_texts,) long)``."""
    sim, t2v = _load_array(path)
    sim = np.asarray(sim, dtype=np.float64)
    if sim.ndim == 3:  # CLIP4Clip layout (videos, max captions, videos), padded rows
        v, c, v2 = sim.shape
        if v != v2:
            raise InputError(f'{path}: a 3-D similarity must be (num_videos, max_captions, '
                             f'num_videos), got {sim.shape}')
        rows = sim.reshape(v * c, v)
        valid = np.isfinite(rows).all(1)
        padded = ~np.isfinite(rows).any(1)
        if not (valid | padded).all():
            raise InputError(f'{path}: a row is partly non-finite (padding rows must be all '
                             '-inf or NaN)')
        t2v = np.repeat(np.arange(v), c)[valid]
        sim = rows[valid]
    elif sim.ndim == 2:
        if text_to_video is not None:
            t2v, _ = _load_array(text_to_video)
        elif captions_per_video:
            t2v = np.arange(sim.shape[0]) // int(captions_per_video)
        elif t2v is None:
            if sim.shape[0] != sim.shape[1]:
                raise InputError(f'{path}: a {sim.shape} matrix is not square; give '
                                 '--text-to-video or --captions-per-video')
            t2v = np.arange(sim.shape[0])
        t2v = np.asarray(t2v).reshape(-1)
        if len(t2v) != sim.shape[0]:
            raise InputError(f'{text_to_video or path}: {len(t2v)} video indices for '
                             f'{sim.shape[0]} texts')
    else:
        raise InputError(f'{path}: expected a 2-D or 3-D similarity, got shape {sim.shape}')
    if not np.isfinite(sim).all():
        raise InputError(f'{path}: the similarity matrix has NaN or inf entries')
    return torch.from_numpy(sim), torch.as_tensor(t2v, dtype=torch.long)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Retrieval metrics of a similarity matrix')
    parser.add_argument('sim', help='similarity .npy / .npz / .pt (texts x videos, or '
                                    'CLIP4Clip\'s videos x captions x videos)')
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--text-to-video', help='.npy / .txt: the video index of each text')
    group.add_argument('--captions-per-video', type=int,
                       help='texts come in consecutive groups of this many per video')
    parser.add_argument('--protocol', default='both', choices=list(PROTOCOLS) + ['both'])
    parser.add_argument('--out', help='also write the metrics JSON here')
    parser.add_argument('--decimals', type=int, default=2, help='-1 keeps figures unrounded')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        sim, t2v = load_similarity(args.sim, args.text_to_video, args.captions_per_video)
        protocols = PROTOCOLS if args.protocol == 'both' else (args.protocol, )
        metrics = {p: retrieval_metrics(sim, t2v, protocol=p) for p in protocols}
    except ValueError as e:  # InputError, and retrieval_metrics' checks
        print(f'eval_retrieval: {e}', file=sys.stderr)
        sys.exit(2)
    if args.decimals >= 0:
        metrics = {p: {k: round(v, args.decimals) for k, v in m.items()}
                   for p, m in metrics.items()}
    text = json.dumps(metrics, indent=2)
    print(text)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            f.write(text + '\n')
    return metrics


if __name__ == '__main__':
    main()
