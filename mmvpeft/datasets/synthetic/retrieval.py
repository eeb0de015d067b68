"""Tiny synthetic captioned-video set for a CPU text-video retrieval demo.

Each video shows one coloured shape (:data:`~.videos.COLORS` x
:data:`~.videos.SHAPES`) moving in one direction (right/left/up/down) for its whole
length over a noisy gray background; its two captions are the two phrasings of
:data:`~.videos.QUERY_TEMPLATES` ("a red circle moves to the right", "a red circle
slides from left to right"). Telling videos apart needs colour, shape *and* motion, so a
model that ignores time cannot exceed chance on the direction.

Layout written under ``root`` (the generic retrieval JSON-lines layout)::

    videos/{vid}.mp4                     mp4v, ``fps`` frames/s, ``size`` = (W, H)
    annotations_train.jsonl              {"vid", "captions": [2 str], "video", "color",
    annotations_val.jsonl                 "shape", "direction"}; disjoint videos
    synthetic_retrieval_manifest.json    parameters and the files this generator wrote

Val videos all have different (colour, shape, direction) combinations, so every val caption
matches exactly one val video, and they are balanced: with the default 24 val videos every
colour appears 4 times, every direction 6 times and every shape 8 times. Training videos
cycle over all 72 combinations in a seeded order.

Data safety: the rule of :mod:`~mmvpeft.datasets.synthetic.manifest`, shared by every
generator: only files its own manifest lists are ever deleted, and a non-empty folder without
that manifest is refused (``FileExistsError`` naming the folder).
"""
import os
import os.path as osp
from typing import Dict, List, Tuple

import numpy as np

from mmvpeft.utils.fileio import write_jsonl
from .manifest import GeneratorManifest
from .videos import COLORS, QUERY_TEMPLATES, SHAPES, draw_shape, write_video

MANIFEST_NAME = 'synthetic_retrieval_manifest.json'
_GENERATOR = 'mmvpeft.datasets.synthetic_retrieval'  # the old module path: see .manifest
# Bump when the output for the same parameters changes, to invalidate old sets.
_GENERATOR_VERSION = 1
DIRECTIONS = ('right', 'left', 'up', 'down')
NUM_COMBOS = len(COLORS) * len(SHAPES) * len(DIRECTIONS)  # 72


def balanced_combos(rng: np.random.Generator) -> List[Tuple[str, str, str]]:
    """All 72 (colour, shape, direction) combinations in a balanced order.

    Entry ``k = 24 b + j`` (block ``b`` in 0..2) has colour ``j mod 6``, direction
    ``j div 6`` and shape ``(colour + direction + b) mod 3``: each block of 24 holds every
    (colour, direction) pair once and every shape 8 times, and the shift by ``b`` makes the
    72 entries distinct. A prefix of 24 (the default val set) is therefore exactly
    balanced; other prefix lengths are close to it. Seeded permutations of the colour, shape
    and direction names vary which combinations come first without breaking the balance.
    """
    colors = [list(COLORS)[i] for i in rng.permutation(len(COLORS))]
    shapes = [SHAPES[i] for i in rng.permutation(len(SHAPES))]
    directions = [DIRECTIONS[i] for i in rng.permutation(len(DIRECTIONS))]
    out = []
    for k in range(NUM_COMBOS):
        b, j = divmod(k, len(COLORS) * len(DIRECTIONS))
        c, d = j % len(COLORS), j // len(COLORS)
        out.append((colors[c], shapes[(c + d + b) % len(SHAPES)], directions[d]))
    return out


def captions_for(color: str, shape: str, direction: str) -> List[str]:
    """The two phrasings describing one video."""
    return [t.format(color=color, shape=shape) for t in QUERY_TEMPLATES[direction]]


def _make_frames(rng: np.random.Generator, color: str, shape: str, direction: str,
                 num_frames: int, size: Tuple[int, int]) -> List[np.ndarray]:
    """BGR uint8 ``(H, W, 3)`` frames of one shape crossing the frame in ``direction``."""
    w, h = size
    r = max(3, int(round(min(w, h) * 0.15)))
    horizontal = direction in ('left', 'right')
    extent = w if horizontal else h
    lo, hi = r + 1, extent - r - 2
    # Jittered start/end (each within the outer fifth of the path) vary the videos of a
    # combination without ever making the motion too short to see.
    span = hi - lo
    start = lo + int(rng.integers(0, max(1, span // 5)))
    end = hi - int(rng.integers(0, max(1, span // 5)))
    if direction in ('left', 'up'):
        start, end = end, start
    fixed = int(rng.integers(r + 1, (h if horizontal else w) - r - 1))
    gray = int(rng.integers(80, 160))
    noise = rng.normal(0, 8, (h, w, 1))
    background = np.clip(gray + noise, 0, 255).astype(np.uint8).repeat(3, axis=2)
    bgr = COLORS[color][::-1]
    frames = []
    for n in range(num_frames):
        pos = int(round(start + (end - start) * n / max(1, num_frames - 1)))
        frame = background.copy()
        cx, cy = (pos, fixed) if horizontal else (fixed, pos)
        draw_shape(frame, shape, cx, cy, r, bgr)
        frames.append(frame)
    return frames


def generate_synthetic_retrieval(root: str,
                                 num_train: int = 120,
                                 num_val: int = 24,
                                 duration: float = 4.0,
                                 fps: float = 4,
                                 size: Tuple[int, int] = (64, 64),
                                 seed: int = 0) -> Dict[str, str]:
    """Write the synthetic retrieval set under ``root`` unless an identical one is there.

    Deterministic: the same arguments give the same files. Returns at once when the manifest
    records the same parameters and all files exist; otherwise it deletes the files its
    previous manifest lists and regenerates. The manifest is written first (``complete:
    false``, listing every file about to be written) and marked complete last, so an
    interrupted run is cleaned up and redone by the next call.

    Args:
        root: Output folder; created if needed. Must be empty or hold our manifest.
        num_train: Training videos (``train_0000``, ...), cycling over all combinations.
        num_val: Val videos (``val_0000``, ...), all with distinct combinations, at most 72.
        duration: Seconds per video (``round(duration * fps)`` frames, at least 2).
        fps: Frame rate.
        size: Frame size ``(width, height)``; keep the width a multiple of 32, decord
            mis-sizes other mp4v widths.
        seed: Seed for all content.

    Returns:
        dict: ``{'train': ann_file, 'val': ann_file, 'video_dir': folder}``.

    Raises:
        FileExistsError: ``root`` is non-empty without our manifest, or the manifest is not
            ours (nothing is deleted).
    """
    num_frames = int(round(duration * fps))
    if num_frames < 2:
        raise ValueError(f'need at least 2 frames, got duration={duration}, fps={fps}')
    if num_train < 1 or not 1 <= num_val <= NUM_COMBOS:
        raise ValueError(f'need num_train >= 1 and 1 <= num_val <= {NUM_COMBOS}, got '
                         f'{num_train}, {num_val}')
    size = (int(size[0]), int(size[1]))
    params = dict(version=_GENERATOR_VERSION, num_train=int(num_train), num_val=int(num_val),
                  duration=float(duration), fps=float(fps), size=list(size), seed=int(seed))
    out = dict(train=osp.join(root, 'annotations_train.jsonl'),
               val=osp.join(root, 'annotations_val.jsonl'), video_dir=osp.join(root, 'videos'))

    owner = GeneratorManifest(root, MANIFEST_NAME, _GENERATOR)
    if owner.up_to_date(params):
        return out

    rng = np.random.default_rng(seed)
    combos = balanced_combos(rng)
    train_order = [combos[i] for i in rng.permutation(NUM_COMBOS)]
    videos = [(f'val_{i:04d}', 'val', combos[i]) for i in range(num_val)]
    videos += [(f'train_{i:04d}', 'train', train_order[i % NUM_COMBOS])
               for i in range(num_train)]
    rels = [f'videos/{vid}.mp4' for vid, _, _ in videos]
    rels += ['annotations_train.jsonl', 'annotations_val.jsonl']
    owner.begin(params, rels)
    os.makedirs(out['video_dir'], exist_ok=True)

    # One child stream per video: a video's pixels do not depend on the others.
    streams = np.random.SeedSequence([seed, 1]).spawn(len(videos))
    records = dict(train=[], val=[])
    for (vid, split, (color, shape, direction)), ss in zip(videos, streams):
        frames = _make_frames(np.random.default_rng(ss), color, shape, direction,
                              num_frames, size)
        write_video(osp.join(out['video_dir'], f'{vid}.mp4'), frames, float(fps), size)
        records[split].append(dict(vid=vid, captions=captions_for(color, shape, direction),
                                   video=f'{vid}.mp4', color=color, shape=shape,
                                   direction=direction))
    write_jsonl(out['train'], records['train'])
    write_jsonl(out['val'], records['val'])
    owner.finish()
    return out
