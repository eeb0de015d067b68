"""Grounding on videos longer than the trained length: overlapping windows, stitched.

A grounding model is trained on videos of at most ``window`` clips. A longer video keeps
its clips at the config's ``clip_len`` and is cut into overlapping windows of ``window``
clips, ``stride`` clips apart (the last window ends at the last clip). Each window is run
as a video of its own; the per-clip outputs are then stitched into one sequence over the
whole video and decoded once:

- **Calibration across windows.** A clip seen by several windows gets the weighted mean
  of their foreground probabilities and boundary distances. The weight fades towards a
  window's inner edges (a clip there lacks context on one side), so the window that sees
  a clip with most context on both sides dominates; at the video's own ends it does not
  fade. All clips' scores are then on one scale, whichever window they came from.
- **Cross-window NMS.** Each clip proposes one moment (its stitched distances back to the
  start and on to the end); the proposals of the whole video, best ``pre_nms_topk`` first,
  go through one temporal NMS, so a moment seen by two windows yields one window.

With a single window (a video no longer than ``window``) the result equals the model's
ordinary prediction. :func:`sliding_window_predict` runs this on a batch already in memory
(``tools/test.py`` with ``long_video.stream=False``, and clip features); the long-video
loops of ``tools/test.py`` and ``mmvpeft.apis.MomentPredictor`` stream frames window by window.
"""
import math
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from mmvpeft.ops.temporal_nms import temporal_nms

LONG_VIDEO_MODES = ('sliding', 'resample')
# Inputs with a time axis (B, T, ...) that windows slice; the rest is per-query.
VIDEO_INPUT_KEYS = ('imgs', 'video_feat', 'video_prefix', 'video_mask')
# A window: ``[start, end)`` clip runs of the video, put side by side.
Window = Tuple[Tuple[int, int], ...]


def check_long_video_cfg(cfg: Optional[dict], where: str = 'long_video') -> Optional[dict]:
    """Validate a ``long_video`` dict; returns it with defaults filled, or None.

    Keys: ``mode`` (``'sliding'`` or ``'resample'``), ``window`` (clips per window, the
    trained length), ``stride`` (clips between window starts, default ``window // 2``),
    ``batch_windows`` (windows per forward pass, default 4), ``pre_nms_topk`` (default
    1000), ``progress`` (show a progress bar, default False).

    Raises:
        ValueError / KeyError: naming ``where`` and the bad key.
    """
    if cfg is None:
        return None
    cfg = dict(cfg)
    known = {'mode', 'window', 'stride', 'batch_windows', 'pre_nms_topk', 'progress',
             'feature_rate', 'rescore', 'candidates', 'context', 'both_orders'}
    unknown = set(cfg) - known
    if unknown:
        raise KeyError(f'{where}: unknown key(s) {sorted(unknown)}; expected {sorted(known)}')
    mode = cfg.setdefault('mode', 'sliding')
    if mode not in LONG_VIDEO_MODES:
        raise ValueError(f'{where}.mode must be one of {LONG_VIDEO_MODES}, got {mode!r}')
    window = cfg.get('window')
    if mode == 'sliding':
        if window is None or int(window) < 1:
            raise ValueError(f'{where}.window must be a positive number of clips (the trained '
                             f'length, e.g. the loader\'s max_clips), got {window!r}')
        cfg['window'] = int(window)
        stride = cfg.get('stride')
        stride = max(1, cfg['window'] // 2) if stride is None else int(stride)
        if not 1 <= stride <= cfg['window']:
            raise ValueError(f'{where}.stride must be in [1, window={cfg["window"]}], got '
                             f'{cfg.get("stride")!r}')
        cfg['stride'] = stride
    cfg['batch_windows'] = int(cfg.get('batch_windows') or 4)
    if cfg['batch_windows'] < 1:
        raise ValueError(f'{where}.batch_windows must be >= 1, got {cfg["batch_windows"]}')
    cfg['pre_nms_topk'] = int(cfg.get('pre_nms_topk') or 1000)
    cfg['progress'] = bool(cfg.get('progress', False))
    cfg['rescore'] = bool(cfg.get('rescore', True))
    cfg['candidates'] = int(cfg.get('candidates') or 0)  # 0: two per window
    cfg['context'] = int(cfg.get('context', 1))
    cfg['both_orders'] = bool(cfg.get('both_orders', True))
    if cfg['candidates'] < 0 or cfg['context'] < 0:
        raise ValueError(f'{where}.candidates and {where}.context must be >= 0, got '
                         f'{cfg["candidates"]}, {cfg["context"]}')
    rate = cfg.setdefault('feature_rate', 'resample')
    if rate not in ('resample', 'error'):
        raise ValueError(f'{where}.feature_rate must be "resample" or "error", got {rate!r}')
    return cfg


def plan_windows(num_clips: int, window: int, stride: int) -> List[Tuple[int, int]]:
    """``[start, end)`` clip spans of the windows covering ``num_clips`` clips.

    Windows start every ``stride`` clips; the last one is moved back to end at the last
    clip, so every window but a lone short one has exactly ``window`` clips.

    >>> plan_windows(10, 4, 2)
    [(0, 4), (2, 6), (4, 8), (6, 10)]
    >>> plan_windows(9, 4, 3)
    [(0, 4), (3, 7), (5, 9)]
    """
    if num_clips < 1:
        raise ValueError(f'num_clips must be >= 1, got {num_clips}')
    if window < 1 or not 1 <= stride <= window:
        raise ValueError(f'need window >= 1 and 1 <= stride <= window, got {window}, {stride}')
    if num_clips <= window:
        return [(0, num_clips)]
    starts = list(range(0, num_clips - window, stride)) + [num_clips - window]
    return [(s, s + window) for s in sorted(set(starts))]


def window_weights(start: int, end: int, num_clips: int, fade: int) -> torch.Tensor:
    """``(end - start,)`` stitching weights of a window's clips.

    They ramp from ``1 / (fade + 1)`` up to 1 over the ``fade`` clips next to an inner
    edge (one that is not the video's start or end), and are 1 elsewhere.
    """
    pos = torch.arange(end - start, dtype=torch.float64)
    w = torch.ones(end - start, dtype=torch.float64)
    if fade > 0:
        ramp = lambda d: ((d + 1) / (fade + 1)).clamp(max=1.0)  # noqa: E731
        if start > 0:
            w = torch.minimum(w, ramp(pos))
        if end < num_clips:
            w = torch.minimum(w, ramp(end - start - 1 - pos))
    return w


class WindowStitcher:
    """Accumulates per-window outputs into per-clip outputs over the whole video.

    Args:
        num_clips: clips in the whole video.
        window, stride: the window plan (sets how far weights fade at inner edges:
            half the overlap).
    """

    def __init__(self, num_clips: int, window: int, stride: int):
        self.num_clips = int(num_clips)
        self.fade = max(0, (window - stride) // 2)
        self.prob = torch.zeros(num_clips, dtype=torch.float64)
        self.dist = torch.zeros(num_clips, 2, dtype=torch.float64)
        self.weight = torch.zeros(num_clips, dtype=torch.float64)

    def add(self, start: int, end: int, logits: torch.Tensor, dist: torch.Tensor) -> None:
        """Add one window: ``logits (end - start,)`` and ``dist (end - start, 2)`` (clip
        units, relative to each clip's centre, as :class:`DenseMomentHead` gives them)."""
        if logits.shape != (end - start, ) or dist.shape != (end - start, 2):
            raise ValueError(f'window [{start}, {end}) needs logits ({end - start},) and dist '
                             f'({end - start}, 2), got {tuple(logits.shape)} and '
                             f'{tuple(dist.shape)}')
        w = window_weights(start, end, self.num_clips, self.fade)
        self.prob[start:end] += w * logits.detach().double().sigmoid().cpu()
        self.dist[start:end] += w[:, None] * dist.detach().double().cpu()
        self.weight[start:end] += w

    def result(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Stitched ``(prob (N,), dist (N, 2))``, float32."""
        if (self.weight <= 0).any():
            missing = int((self.weight <= 0).sum())
            raise RuntimeError(f'{missing} of {self.num_clips} clips were never covered by a '
                               'window')
        return ((self.prob / self.weight).float(),
                (self.dist / self.weight[:, None]).float())


def decode_stitched(prob: torch.Tensor, dist: torch.Tensor, clip_len: float, duration: float,
                    nms_thr: float = 0.7, max_windows: int = 10,
                    pre_nms_topk: int = 1000) -> dict:
    """Windows in seconds from stitched per-clip outputs, as ``DenseMomentHead.predict``
    decodes one video, with the proposals pre-filtered to the best ``pre_nms_topk`` (NMS
    builds an ``N x N`` IoU matrix, which would grow with the square of the video).

    Returns:
        dict: ``pred_relevant_windows`` (``[[start, end, score], ...]``, best first) and
        ``pred_saliency_scores`` (``prob`` as a list).
    """
    n = len(prob)
    centre = torch.arange(n) + 0.5
    windows = torch.stack([centre - dist[:, 0], centre + dist[:, 1]], -1)
    windows = (windows * clip_len).clamp(0, duration)
    cand = torch.argsort(prob, descending=True, stable=True)
    if pre_nms_topk and n > pre_nms_topk:
        cand = torch.sort(cand[:pre_nms_topk]).values  # clip order: NMS tie-breaks as before
    keep = cand[temporal_nms(windows[cand], prob[cand], nms_thr, max_windows)]
    pred = torch.cat([windows[keep], prob[keep, None]], dim=1)
    return dict(pred_relevant_windows=pred.tolist(), pred_saliency_scores=prob.tolist())


def _batches(spans: Sequence[Tuple[int, int]], size: int) -> Iterator[list]:
    for lo in range(0, len(spans), size):
        yield list(spans[lo:lo + size])


def progress_bar(total: int, enabled: bool) -> Callable[[int], None]:
    """An ``update(n)`` callable: tqdm when installed, else MMEngine's ProgressBar; a no-op
    when disabled."""
    if not enabled:
        return lambda n=1: None
    try:
        from tqdm import tqdm
        bar = tqdm(total=total, unit='window', leave=False)
        return bar.update
    except ImportError:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(total)

        def update(n=1):
            for _ in range(n):
                bar.update()
        return update


def run_windows(forward: Callable[[List[Window]], Dict[str, torch.Tensor]],
                num_clips: int, cfg: dict,
                update: Optional[Callable[[int], None]] = None) -> Tuple[torch.Tensor,
                                                                          torch.Tensor]:
    """Plan windows, call ``forward`` on batches of them, stitch.

    Args:
        forward: maps a list of windows, each a tuple of ``[start, end)`` clip runs put
            side by side (here one run per window), to head outputs ``logits (W, T')`` and
            ``dist (W, T', 2)`` with ``T'`` at least the window's clips (rows past them,
            padding, are ignored).
        num_clips: clips of the whole video.
        cfg: a checked ``long_video`` dict (:func:`check_long_video_cfg`).
        update: progress callback, called with the number of windows done.

    Returns:
        Stitched ``(prob (N,), dist (N, 2))``.
    """
    spans = plan_windows(num_clips, cfg['window'], cfg['stride'])
    stitcher = WindowStitcher(num_clips, cfg['window'], cfg['stride'])
    for chunk in _batches(spans, cfg['batch_windows']):
        out = forward([((s, e), ) for s, e in chunk])
        for k, (s, e) in enumerate(chunk):
            stitcher.add(s, e, out['logits'][k, :e - s], out['dist'][k, :e - s])
        if update is not None:
            update(len(chunk))
    return stitcher.result()


def _proposals(prob: torch.Tensor, dist: torch.Tensor, clip_len: float,
               duration: float) -> torch.Tensor:
    centre = torch.arange(len(prob)) + 0.5
    windows = torch.stack([centre - dist[:, 0], centre + dist[:, 1]], -1)
    return (windows * clip_len).clamp(0, duration)


def _candidate_segments(prob, windows, clip_len, cfg, num_candidates):
    """The best proposals whose context segments do not overlap: ``[(anchor, core, seg)]``
    with ``core``/``seg`` clip spans; a segment is the proposal plus ``context`` clips on
    each side, at most half a window (so any two fit in one window)."""
    n, half = len(prob), max(1, cfg['window'] // 2)
    taken, out = [], []
    for a in torch.argsort(prob, descending=True, stable=True)[:cfg['pre_nms_topk']].tolist():
        s, e = windows[a].tolist()
        c0 = min(max(int(math.floor(s / clip_len + 1e-6)), 0), n - 1)
        c1 = min(max(int(math.ceil(e / clip_len - 1e-6)), c0 + 1), n)
        c0, c1 = min(c0, a), max(c1, a + 1)  # the anchor clip is always inside
        lo, hi = max(0, c0 - cfg['context']), min(n, c1 + cfg['context'])
        if hi - lo > half:  # a long proposal: keep half a window around its anchor
            lo = max(0, min(a - half // 2, n - half))
            hi = lo + half
            c0, c1 = max(c0, lo), min(c1, hi)
        if any(lo < t1 and t0 < hi for t0, t1 in taken):
            continue
        taken.append((lo, hi))
        out.append((a, (c0, c1), (lo, hi)))
        if len(out) >= num_candidates:
            break
    return out


def rescore_candidates(forward: Callable[[List[Window]], Dict[str, torch.Tensor]],
                       prob: torch.Tensor, dist: torch.Tensor, clip_len: float,
                       duration: float, cfg: dict, nms_thr: float = 0.7,
                       max_windows: int = 10,
                       update: Optional[Callable[[int], None]] = None) -> dict:
    """Calibrate the best proposals of all windows against each other, then decode.

    A grounding model is trained on videos that contain the queried moment, so it learns
    to rank clips *within* a video: a window without the moment still scores its most
    similar event high. Scores of different windows are made comparable by letting the
    model compare the candidates side by side: the best proposals of the whole video
    (``candidates`` of them, at least two per window by default; each with ``context``
    clips around it) are packed, in time order, into windows of at most ``window`` clips;
    in each window the better half (by the model's best score over the candidate's clips)
    goes on to the next round, until one window holds the rest. A candidate's score is
    ``(rounds won + its last score) / (rounds + 1)``; the other proposals follow, scored
    ``prob / (rounds + 1)``, and one NMS over all gives the windows.

    Args:
        forward: as in :func:`run_windows` (windows of several runs side by side).
        prob, dist: stitched per-clip outputs (:func:`run_windows`).
        clip_len, duration: seconds per clip, seconds of the video.
        cfg: a checked ``long_video`` dict.

    Returns:
        As :func:`decode_stitched`.
    """
    n = len(prob)
    windows = _proposals(prob, dist, clip_len, duration)
    num = cfg['candidates'] or 2 * count_windows(n, cfg)
    cands = _candidate_segments(prob, windows, clip_len, cfg, num)
    level = {i: 0 for i in range(len(cands))}
    score = {i: float(prob[c[0]]) for i, c in enumerate(cands)}
    alive = sorted(range(len(cands)), key=lambda i: cands[i][2][0])
    rounds = 0
    while len(alive) > 1:
        groups, cur, used = [], [], 0
        for i in alive:  # greedy packing in time order
            seg_len = cands[i][2][1] - cands[i][2][0]
            if cur and used + seg_len > cfg['window']:
                groups.append(cur)
                cur, used = [], 0
            cur.append(i)
            used += seg_len
        groups.append(cur)
        rounds += 1
        # Each group runs in time order and reversed, and a candidate's score is the mean
        # of both, so where a candidate sits in the window (a model's position prior) does
        # not decide.
        orders = [g for g in groups] + [g[::-1] for g in groups] if cfg['both_orders'] \
            else list(groups)
        sums = {i: 0.0 for g in groups for i in g}
        for chunk in _batches(orders, cfg['batch_windows']):
            out = forward([tuple(cands[i][2] for i in g) for g in chunk])
            p = out['logits'].detach().float().sigmoid().cpu()
            for k, g in enumerate(chunk):
                offset = 0
                for i in g:
                    (c0, c1), (lo, hi) = cands[i][1], cands[i][2]
                    sums[i] += float(p[k, offset + c0 - lo:offset + c1 - lo].max())
                    offset += hi - lo
            if update is not None:
                update(len(chunk))
        for i in sums:
            score[i], level[i] = sums[i] / (len(orders) // len(groups)), rounds
        if len(groups) == 1:
            break
        alive = []
        for g in groups:
            ranked = sorted(g, key=lambda i: -score[i])
            alive += ranked[:len(g) - len(g) // 2]
        alive.sort(key=lambda i: cands[i][2][0])
    final = prob / (rounds + 1)
    for i, (a, _, _) in enumerate(cands):
        final[a] = (level[i] + score[i]) / (rounds + 1)
    order = torch.argsort(final, descending=True, stable=True)[:cfg['pre_nms_topk']]
    keep = order[temporal_nms(windows[order], final[order], nms_thr, max_windows)]
    pred = torch.cat([windows[keep], final[keep, None]], dim=1)
    return dict(pred_relevant_windows=pred.tolist(), pred_saliency_scores=prob.tolist())


def finish_prediction(forward, prob, dist, clip_len, duration, cfg, nms_thr=0.7,
                      max_windows=10, update=None) -> dict:
    """Decode stitched outputs: with ``cfg['rescore']`` (and more than one window) through
    :func:`rescore_candidates`, else :func:`decode_stitched`."""
    if cfg['rescore'] and count_windows(len(prob), cfg) > 1:
        return rescore_candidates(forward, prob, dist, clip_len, duration, cfg, nms_thr,
                                  max_windows, update)
    return decode_stitched(prob, dist, clip_len, duration, nms_thr, max_windows,
                           cfg['pre_nms_topk'])


def count_windows(num_clips: int, cfg: dict) -> int:
    return len(plan_windows(num_clips, cfg['window'], cfg['stride']))


def sliding_window_predict(model, inputs: dict, data_samples: List[dict], cfg: dict,
                           nms_thr: float = 0.7, max_windows: int = 10) -> List[dict]:
    """Predict a batch whose videos are in memory, window by window (``tools/test.py``).

    Args:
        model: a ``MomentGrounder``; called with ``mode='tensor'`` on each window batch.
        inputs: collated inputs, video keys ``(B, T, ...)`` with ``video_mask (B, T)``.
        data_samples: B meta dicts with ``clip_len`` and ``duration``.
        cfg: a checked ``long_video`` dict.

    Returns:
        One prediction dict per sample, as ``DenseMomentHead.predict`` returns.
    """
    preds = []
    for b, sample in enumerate(data_samples):
        n = int(inputs['video_mask'][b].sum())
        per_query = {k: v[b:b + 1] for k, v in inputs.items() if k not in VIDEO_INPUT_KEYS}

        def forward(chunk, b=b, per_query=per_query):
            pieces = {k: [torch.cat([inputs[k][b, s:e] for s, e in runs]) for runs in chunk]
                      for k in VIDEO_INPUT_KEYS if k in inputs}
            longest = max(len(x) for x in pieces['video_mask'])
            win = {}
            for k, rows in pieces.items():  # pad composed windows to one length, masked
                win[k] = torch.stack([torch.cat([x, x.new_zeros((longest - len(x), ) +
                                                                x.shape[1:])]) for x in rows])
            win.update({k: v.expand(len(chunk), *v.shape[1:]) for k, v in per_query.items()})
            return model(win, None, mode='tensor')

        prob, dist = run_windows(forward, n, cfg)
        preds.append(finish_prediction(
            forward, prob, dist, float(sample['clip_len']),
            float(sample.get('duration', n * sample['clip_len'])), cfg, nms_thr, max_windows))
    return preds
