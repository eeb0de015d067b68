"""Tiny synthetic grounding set: coloured shapes moving over a gray background.

Each video holds a few non-overlapping events; during an event one coloured
shape crosses the frame, and one query per event describes it ("a red circle
moves to the right"). It exercises the raw-video pipeline end to end (decode,
clips, windows in seconds) in seconds on a CPU, with answers that are visible
in the pixels.

Layout written under ``root``::

    videos/{vid}.mp4                 mp4v, ``fps`` frames/s, ``size`` = (W, H)
    annotations.jsonl                {"qid", "query", "vid", "duration",
                                      "relevant_windows": [[start, end]]}
    annotations_{train,val}.jsonl    only with ``val_ratio > 0``; disjoint videos
    synthetic_manifest.json          parameters and the files written

Data safety (:mod:`~mmvpeft.datasets.synthetic.manifest`, the rule of every generator): only
files listed in the generator's own manifest are ever deleted; a non-empty ``root`` without
it is refused with a ``FileExistsError`` naming the folder.
"""
import math
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from mmvpeft.utils.fileio import atomic_path, iter_jsonl, write_jsonl
from .manifest import GeneratorManifest

# Bump when the output for the same parameters changes, to invalidate old sets.
_GENERATOR_VERSION = 1
MANIFEST_NAME = 'synthetic_manifest.json'
_GENERATOR = 'mmvpeft.datasets.synthetic_video'  # the old module path: see .manifest

# RGB; each colour is high (>200) in some channels and low (<70) in the others,
# so it is told apart from the gray background and from the other colours by
# thresholding channels, even after lossy mp4v coding.
COLORS: Dict[str, Tuple[int, int, int]] = {
    'red': (230, 30, 30),
    'green': (30, 210, 30),
    'blue': (30, 50, 230),
    'yellow': (235, 225, 30),
    'magenta': (225, 35, 225),
    'cyan': (30, 215, 225),
}
SHAPES = ('circle', 'square', 'triangle')
# Two phrasings per direction; the colour and shape are always words 2 and 3.
QUERY_TEMPLATES = {
    'right': ('a {color} {shape} moves to the right',
              'a {color} {shape} slides from left to right'),
    'left': ('a {color} {shape} moves to the left',
             'a {color} {shape} slides from right to left'),
    'up': ('a {color} {shape} moves up', 'a {color} {shape} rises to the top'),
    'down': ('a {color} {shape} moves down', 'a {color} {shape} falls to the bottom'),
}
_MIN_EVENT_S, _MAX_EVENT_S = 2, 8


def _sample_windows(rng: np.random.Generator, num_events: int,
                    total_s: int) -> List[Tuple[int, int]]:
    """Whole-second, non-overlapping windows of 2-8 s inside ``[0, total_s]``.

    Consecutive events are at least 1 s apart so every frame shows at most one
    shape and the events stay distinguishable. Events that cannot fit are
    dropped (windows are shortened first).
    """
    max_events = (total_s + 1) // (_MIN_EVENT_S + 1)
    num_events = min(num_events, max_events)
    lengths = rng.integers(_MIN_EVENT_S, _MAX_EVENT_S + 1, num_events)
    while lengths.sum() + num_events - 1 > total_s:
        lengths[np.argmax(lengths)] -= 1
    free = total_s - int(lengths.sum()) - (num_events - 1)
    # Random composition of the free seconds into num_events + 1 gaps.
    cuts = np.sort(rng.integers(0, free + 1, num_events))
    gaps = np.diff(np.concatenate([[0], cuts, [free]]))
    windows, t = [], int(gaps[0])
    for length, gap in zip(lengths.tolist(), gaps[1:].tolist()):
        windows.append((t, t + length))
        t += length + 1 + gap
    return windows


def draw_shape(frame: np.ndarray, shape: str, cx: int, cy: int, r: int,
               bgr: Tuple[int, int, int]) -> None:
    """Draw a filled ``shape`` (one of :data:`SHAPES`) of radius ``r`` centred on
    ``(cx, cy)`` into the BGR uint8 ``(H, W, 3)`` ``frame``, in place."""
    # LINE_8 (no anti-aliasing) keeps edge pixels at the pure colour.
    if shape == 'circle':
        cv2.circle(frame, (cx, cy), r, bgr, thickness=-1, lineType=cv2.LINE_8)
    elif shape == 'square':
        cv2.rectangle(frame, (cx - r, cy - r), (cx + r, cy + r), bgr, thickness=-1,
                      lineType=cv2.LINE_8)
    else:
        pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
        cv2.fillPoly(frame, [pts], bgr, lineType=cv2.LINE_8)


def draw_event(frame: np.ndarray, event: Dict, progress: float, r: int) -> None:
    """Draw ``event``'s shape into ``frame`` (BGR ``(H, W, 3)``, in place) where its motion
    puts it at ``progress`` (0 at its first frame, 1 at its last), ``r`` pixels in radius."""
    h, w = frame.shape[:2]
    horizontal = event['direction'] in ('left', 'right')
    lo, hi = r + 1, (w if horizontal else h) - r - 2
    pos = int(round(lo + (hi - lo) * (progress if event['direction'] in ('right', 'down')
                                      else 1 - progress)))
    cx, cy = (pos, event['fixed']) if horizontal else (event['fixed'], pos)
    draw_shape(frame, event['shape'], cx, cy, r, COLORS[event['color']][::-1])


def _make_video(rng: np.random.Generator, duration: float, fps: float,
                size: Tuple[int, int],
                events_per_video: Tuple[int, int]) -> Tuple[List[np.ndarray], List[Dict]]:
    """Frames (BGR uint8 ``(H, W, 3)``) and event records for one video."""
    w, h = size
    num_frames = int(round(duration * fps))
    num_events = int(rng.integers(events_per_video[0], events_per_video[1] + 1))
    windows = _sample_windows(rng, num_events, int(math.floor(duration + 1e-6)))
    names = list(COLORS)
    color_ids = rng.choice(len(names), len(windows), replace=False)
    r = max(3, int(round(min(w, h) * 0.15)))

    events = []
    for (start, end), ci in zip(windows, color_ids.tolist()):
        direction = str(rng.choice(list(QUERY_TEMPLATES)))
        color, shape = names[ci], str(rng.choice(SHAPES))
        template = QUERY_TEMPLATES[direction][int(rng.integers(2))]
        # The shape's fixed coordinate, on the axis it does not move along.
        fixed = int(rng.integers(r + 1, (h if direction in ('left', 'right') else w) - r - 1))
        events.append(dict(start=start, end=end, color=color, shape=shape,
                           direction=direction, fixed=fixed,
                           query=template.format(color=color, shape=shape)))

    gray = int(rng.integers(80, 160))
    noise = rng.normal(0, 8, (h, w, 1))
    background = np.clip(gray + noise, 0, 255).astype(np.uint8).repeat(3, axis=2)
    frames = [background.copy() for _ in range(num_frames)]
    for ev in events:
        # Frame n is shown during [n / fps, (n + 1) / fps).
        n0 = int(math.ceil(ev['start'] * fps - 1e-6))
        n1 = min(num_frames, int(math.ceil(ev['end'] * fps - 1e-6)))
        for n in range(n0, n1):
            draw_event(frames[n], ev, (n - n0) / max(1, n1 - n0 - 1), r)
    return frames, events


def write_video(path: str, frames: Sequence[np.ndarray], fps: float,
                size: Tuple[int, int]) -> None:
    """Write BGR uint8 ``(H, W, 3)`` ``frames`` as an mp4v video of ``size = (W, H)``,
    atomically (an interrupted run never leaves a truncated file under ``path``)."""
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*'mp4v'), fps, size)
        if not writer.isOpened():
            raise RuntimeError(f'cv2.VideoWriter (mp4v) cannot open {tmp}')
        for frame in frames:
            writer.write(frame)
        writer.release()


def split_annotations(ann_file: str,
                      val_ratio: float = 0.25,
                      seed: int = 0,
                      out_dir: Optional[str] = None) -> Tuple[str, str]:
    """Split a moment-retrieval JSON-lines file into train/val by video.

    All queries of a video go to the same side, so train and val share no
    video. The val videos are a seeded random choice of
    ``round(num_videos * val_ratio)`` videos (at least 1 and at most
    ``num_videos - 1``); line order is preserved within each file.

    Args:
        ann_file: Input ``.jsonl``, one record with a ``vid`` per line.
        val_ratio: Fraction of videos for val, in (0, 1).
        seed: Seed of the choice of val videos.
        out_dir: Where to write; defaults to the folder of ``ann_file``.

    Returns:
        tuple: Paths of ``annotations_train.jsonl`` and ``annotations_val.jsonl``.
    """
    if not 0 < val_ratio < 1:
        raise ValueError(f'val_ratio must be in (0, 1), got {val_ratio}')
    records = [r for _, r in iter_jsonl(ann_file)]
    vids = list(dict.fromkeys(rec['vid'] for rec in records))
    if len(vids) < 2:
        raise ValueError(f'need at least 2 videos to split {ann_file}, got {len(vids)}')
    num_val = min(len(vids) - 1, max(1, int(round(len(vids) * val_ratio))))
    perm = np.random.default_rng(seed).permutation(len(vids))
    val_vids = {vids[i] for i in perm[:num_val].tolist()}
    out_dir = out_dir or osp.dirname(osp.abspath(ann_file))
    train_path = osp.join(out_dir, 'annotations_train.jsonl')
    val_path = osp.join(out_dir, 'annotations_val.jsonl')
    write_jsonl(train_path, [r for r in records if r['vid'] not in val_vids])
    write_jsonl(val_path, [r for r in records if r['vid'] in val_vids])
    return train_path, val_path


def generate_synthetic_videos(root: str,
                              num_videos: int = 24,
                              duration: float = 16.0,
                              fps: float = 4,
                              size: Tuple[int, int] = (64, 64),
                              events_per_video: Tuple[int, int] = (2, 3),
                              seed: int = 0,
                              val_ratio: float = 0.0) -> str:
    """Write the synthetic set under ``root`` unless an identical one is there.

    Deterministic: the same arguments give byte-identical annotation files. A
    manifest of the arguments is written last; a later call with the same
    arguments and all files present returns at once, with different arguments
    it regenerates, deleting only the files its previous manifest lists. A non-empty
    ``root`` without its manifest raises ``FileExistsError`` (nothing is touched).

    Args:
        root: Output folder (created if needed).
        num_videos: Number of videos, ``vid`` = ``synth_0000``, ...
        duration: Seconds per video; ``round(duration * fps)`` frames.
        fps: Frame rate.
        size: Frame size ``(width, height)`` (cv2 order).
        events_per_video: Inclusive ``(min, max)`` events (= queries) per video,
            fewer if the duration cannot hold them.
        seed: Seed for all content.
        val_ratio: If > 0, also write ``annotations_train.jsonl`` and
            ``annotations_val.jsonl`` over disjoint videos (see
            :func:`split_annotations`, same seed).

    Returns:
        str: Path of ``root/annotations.jsonl`` (all queries).
    """
    if duration < _MIN_EVENT_S:
        raise ValueError(f'duration must be >= {_MIN_EVENT_S}s, got {duration}')
    if not fps > 0 or num_videos < 1:
        raise ValueError(f'need fps > 0 and num_videos >= 1, got {fps}, {num_videos}')
    if not 1 <= events_per_video[0] <= events_per_video[1] <= len(COLORS):
        raise ValueError(f'events_per_video must be 1 <= min <= max <= {len(COLORS)}, '
                         f'got {events_per_video}')
    size = (int(size[0]), int(size[1]))
    params = dict(version=_GENERATOR_VERSION, num_videos=int(num_videos),
                  duration=float(duration), fps=float(fps), size=list(size),
                  events_per_video=[int(e) for e in events_per_video], seed=int(seed),
                  val_ratio=float(val_ratio))
    vids = [f'synth_{i:04d}' for i in range(num_videos)]
    video_dir = osp.join(root, 'videos')
    ann_file = osp.join(root, 'annotations.jsonl')
    split_files = [osp.join(root, f'annotations_{s}.jsonl') for s in ('train', 'val')]
    expected = [ann_file] + [osp.join(video_dir, f'{v}.mp4') for v in vids] + \
        (split_files if val_ratio > 0 else [])

    owner = GeneratorManifest(root, MANIFEST_NAME, _GENERATOR)
    if owner.up_to_date(params):
        return ann_file
    owner.begin(params, [osp.relpath(p, root) for p in expected])
    os.makedirs(video_dir, exist_ok=True)

    # One child stream per video: a video's content does not depend on others.
    streams = np.random.SeedSequence(seed).spawn(num_videos)
    records, qid = [], 0
    for vid, ss in zip(vids, streams):
        frames, events = _make_video(np.random.default_rng(ss), float(duration),
                                     float(fps), size, tuple(events_per_video))
        write_video(osp.join(video_dir, f'{vid}.mp4'), frames, float(fps), size)
        for ev in events:
            records.append(dict(qid=qid, query=ev['query'], vid=vid,
                                duration=float(duration),
                                relevant_windows=[[float(ev['start']), float(ev['end'])]]))
            qid += 1
    write_jsonl(ann_file, records)
    if val_ratio > 0:
        split_annotations(ann_file, val_ratio, seed=seed, out_dir=root)
    owner.finish()
    return ann_file
