"""Long synthetic videos from the distributions of the demo sets, for long-video grounding.

A model trained on the short videos of :func:`~.videos.generate_synthetic_videos` (moving
shapes) or on the clip features of :func:`~.moments.generate_synthetic_moments` (planted
concepts) has learned what an event looks like; these functions draw a video many times
longer, with the queried event placed where asked (e.g. in its last tenth) and distractor
events of other colours / concepts elsewhere.

- :func:`write_long_shape_video`: an mp4, written frame by frame (memory does not grow
  with its length).
- :func:`long_concept_features`: ``(T, video_dim)`` clip features and the query's ``(L,
  text_dim)`` word features.
"""
import math
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from mmvpeft.utils.fileio import atomic_path
from .moments import DEFAULTS as MOMENT_DEFAULTS
from .moments import synthetic_concepts
from .videos import COLORS, QUERY_TEMPLATES, SHAPES, draw_event


def _distractors(rng: np.random.Generator, total: float, target: Tuple[float, float],
                 every: float, length: Tuple[int, int], gap: float) -> List[Tuple[float, float]]:
    """Windows of ``length`` s about every ``every`` s, at least ``gap`` s from the target."""
    out, t = [], float(rng.uniform(0, every))
    while t < total:
        n = int(rng.integers(length[0], length[1] + 1))
        s, e = math.floor(t), math.floor(t) + n
        if e <= total and (e + gap <= target[0] or s >= target[1] + gap):
            out.append((float(s), float(e)))
        t = e + gap + float(rng.uniform(0, every))
    return out


def write_long_shape_video(path: str, duration: float, target: Tuple[float, float],
                           fps: float = 4, size: Tuple[int, int] = (64, 64),
                           distractor_every: float = 12.0, seed: int = 0) -> Dict:
    """Write a long moving-shapes mp4 with one queried event at ``target`` seconds.

    Args:
        path: output ``.mp4`` (written atomically).
        duration: seconds.
        target: ``(start, end)`` of the queried event, whole seconds.
        fps, size: as :func:`~.videos.generate_synthetic_videos` (``size = (W, H)``).
        distractor_every: mean seconds between distractor events (other colours).
        seed: seed of the content.

    Returns:
        dict: ``query``, ``window`` ``[start, end]`` (s), ``duration``, ``events`` (all
        events, the target first).
    """
    rng = np.random.default_rng(seed)
    w, h = size
    r = max(3, int(round(min(w, h) * 0.15)))
    names = list(COLORS)
    color = names[int(rng.integers(len(names)))]
    others = [c for c in names if c != color]

    def event(start, end, colour):
        direction = str(rng.choice(list(QUERY_TEMPLATES)))
        shape = str(rng.choice(SHAPES))
        fixed = int(rng.integers(r + 1, (h if direction in ('left', 'right') else w) - r - 1))
        query = QUERY_TEMPLATES[direction][0].format(color=colour, shape=shape)
        return dict(start=start, end=end, color=colour, shape=shape, direction=direction,
                    fixed=fixed, query=query)

    events = [event(float(target[0]), float(target[1]), color)]
    for s, e in _distractors(rng, duration, target, distractor_every, (2, 8), 1.0):
        events.append(event(s, e, others[int(rng.integers(len(others)))]))
    gray = int(rng.integers(80, 160))
    background = np.clip(gray + rng.normal(0, 8, (h, w, 1)), 0, 255).astype(np.uint8).repeat(3, 2)
    num_frames = int(round(duration * fps))
    # Frame n -> the event shown then (events do not overlap).
    spans = sorted((int(math.ceil(ev['start'] * fps - 1e-6)),
                    min(num_frames, int(math.ceil(ev['end'] * fps - 1e-6))), ev) for ev in events)
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*'mp4v'), fps, size)
        if not writer.isOpened():
            raise RuntimeError(f'cv2.VideoWriter (mp4v) cannot open {tmp}')
        k = 0
        for n in range(num_frames):
            frame = background.copy()
            while k < len(spans) and spans[k][1] <= n:
                k += 1
            if k < len(spans) and spans[k][0] <= n < spans[k][1]:
                n0, n1, ev = spans[k]
                draw_event(frame, ev, (n - n0) / max(1, n1 - n0 - 1), r)
            writer.write(frame)
        writer.release()
    return dict(query=events[0]['query'], window=[float(target[0]), float(target[1])],
                duration=float(duration), events=events)


def long_concept_features(num_clips: int, target_clips: Tuple[int, int],
                          concept: Optional[int] = None, distractor_every: int = 12,
                          seed: int = 0, generator: Optional[dict] = None) -> Dict:
    """Clip features of a long video in the distribution of the synthetic moment set.

    Args:
        num_clips: rows (one per ``clip_len`` s of the generator, 2 s by default).
        target_clips: ``[start, end)`` rows of the queried concept.
        concept: the queried concept (default: drawn).
        distractor_every: mean rows between distractor events (other concepts, 2-10 rows).
        seed: seed of the noise and events (not of the concepts).
        generator: the moment generator's parameters (``seed`` selects its concepts): use
            those the model was trained on.

    Returns:
        dict: ``video_feat (num_clips, video_dim)`` and ``text_feat (L, text_dim)`` float32,
        ``window`` ``[start_s, end_s]``, ``duration`` (s), ``clip_len``, ``concept``.
    """
    p = {**MOMENT_DEFAULTS, **(generator or {})}
    concept_v, concept_t, fillers = synthetic_concepts(**(generator or {}))
    rng = np.random.default_rng(seed + 1_000_003)
    if concept is None:
        concept = int(rng.integers(p['num_concepts']))
    feat = rng.normal(0, p['noise'], (num_clips, p['video_dim']))
    s0, e0 = int(target_clips[0]), int(target_clips[1])
    if not 0 <= s0 < e0 <= num_clips:
        raise ValueError(f'target_clips must be inside [0, {num_clips}], got {target_clips}')
    feat[s0:e0] += concept_v[concept]
    others = [c for c in range(p['num_concepts']) if c != concept]
    t = int(rng.integers(0, distractor_every))
    while t < num_clips:
        n = int(rng.integers(p['event_clips'][0], p['event_clips'][1] + 1))
        if t + n <= num_clips and (t + n + 1 <= s0 or t >= e0 + 1):
            feat[t:t + n] += concept_v[others[int(rng.integers(len(others)))]]
        t += n + 1 + int(rng.integers(0, distractor_every))
    words = list(rng.choice(p['num_fillers'], int(rng.integers(2, 7)), replace=True))
    pos = int(rng.integers(0, len(words) + 1))
    text = np.stack([fillers[w] for w in words[:pos]] + [concept_t[concept]] +
                    [fillers[w] for w in words[pos:]])
    text = text + rng.normal(0, 0.1, text.shape)
    clip_len = float(p['clip_len'])
    return dict(video_feat=feat.astype(np.float32), text_feat=text.astype(np.float32),
                window=[s0 * clip_len, e0 * clip_len], duration=num_clips * clip_len,
                clip_len=clip_len, concept=int(concept))
