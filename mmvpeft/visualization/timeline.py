"""Draw a grounding result as one picture (opencv + numpy only): a row of frame thumbnails,
the predicted windows with their scores, the ground truth when given, and the per-clip
saliency curve, all on one time axis."""
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

# BGR colours
_WINDOW = (60, 110, 230)      # predicted windows (orange-red)
_GT = (80, 170, 60)           # ground truth (green)
_CURVE = (200, 120, 30)       # saliency (blue)
_TEXT = (40, 40, 40)
_GRID = (215, 215, 215)


def read_thumbnails(video_path: str, times: Sequence[float], height: int = 72
                    ) -> List[Tuple[float, np.ndarray]]:
    """Decode the frames nearest to ``times`` (seconds) and resize them to ``height`` px.

    Returns:
        ``[(time, BGR uint8 (height, W, 3)), ...]``; empty if the video cannot be read.
    """
    import decord
    try:
        vr = decord.VideoReader(video_path, ctx=decord.cpu(0))
        fps, n = float(vr.get_avg_fps()), len(vr)
        inds = [min(n - 1, max(0, int(round(t * fps)))) for t in times]
        frames = vr.get_batch(inds).asnumpy()
    except Exception:  # a thumbnail row is optional; the timeline still draws
        return []
    out = []
    for t, rgb in zip(times, frames):
        h, w = rgb.shape[:2]
        img = cv2.resize(rgb, (max(1, int(round(w * height / h))), height),
                         interpolation=cv2.INTER_AREA)
        out.append((float(t), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)))
    return out


def draw_timeline(duration: float,
                  windows: Sequence[Sequence[float]],
                  saliency: Sequence[float],
                  clip_len: float,
                  thumbnails: Sequence[Tuple[float, np.ndarray]] = (),
                  gt_windows: Optional[Sequence[Sequence[float]]] = None,
                  query: str = '',
                  top_k: int = 3,
                  width: int = 960) -> np.ndarray:
    """Render a timeline.

    Args:
        duration: video length in seconds (the axis).
        windows: ``(K, 3)`` ``[start, end, score]`` predictions, best first; the best
            ``top_k`` are drawn, one row each, labelled with rank and score.
        saliency: ``(T,)`` per-clip scores in [0, 1]; clip ``i`` covers ``[i, i + 1) *
            clip_len`` seconds.
        clip_len: seconds per saliency entry.
        thumbnails: ``[(time, BGR image)]`` drawn above the axis at their times.
        gt_windows: ``(M, 2)`` ground-truth windows, drawn in green when given.
        query: printed as the title.
        top_k: predicted windows drawn.
        width: image width in pixels.

    Returns:
        BGR uint8 image ``(H, width, 3)``.
    """
    if duration <= 0:
        raise ValueError(f'duration must be > 0, got {duration}')
    margin, label_w = 16, 70
    x0, x1 = margin + label_w, width - margin
    thumb_h = max([im.shape[0] for _, im in thumbnails], default=0)
    windows = [list(map(float, w)) for w in list(windows)[:top_k]]
    rows = len(windows) + (1 if gt_windows is not None else 0)
    curve_h, row_h, axis_h, title_h = 90, 22, 26, 30
    height = title_h + (thumb_h + 12 if thumb_h else 0) + rows * row_h + curve_h + axis_h + 10
    img = np.full((height, width, 3), 255, np.uint8)

    def x_of(t):
        return int(round(x0 + (x1 - x0) * min(max(t, 0.0), duration) / duration))

    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, (f'"{query}"' if query else 'prediction')[:110], (margin, 21), font, 0.55,
                _TEXT, 1, cv2.LINE_AA)
    y = title_h
    if thumb_h:
        for t, im in thumbnails:
            w = min(im.shape[1], x1 - x0)
            left = min(max(x0, x_of(t) - w // 2), x1 - w)
            img[y:y + im.shape[0], left:left + w] = im[:, :w]
            cv2.line(img, (x_of(t), y + im.shape[0]), (x_of(t), y + thumb_h + 10), _GRID, 1)
        y += thumb_h + 12

    def bar(row_y, s, e, colour, label, text=''):
        cv2.putText(img, label, (margin, row_y + 15), font, 0.45, _TEXT, 1, cv2.LINE_AA)
        cv2.rectangle(img, (x0, row_y + 4), (x1, row_y + row_h - 4), (245, 245, 245), -1)
        cv2.rectangle(img, (x_of(s), row_y + 4), (max(x_of(e), x_of(s) + 1), row_y + row_h - 4),
                      colour, -1)
        if text:  # right of the bar, or left of it when the bar reaches the end
            tw = cv2.getTextSize(text, font, 0.42, 1)[0][0]
            tx = x_of(e) + 4 if x_of(e) + 4 + tw <= x1 else max(x0, x_of(s) - tw - 4)
            cv2.putText(img, text, (tx, row_y + 15), font, 0.42, _TEXT, 1, cv2.LINE_AA)

    for k, (s, e, score) in enumerate(windows):
        bar(y, s, e, _WINDOW, f'top-{k + 1}', f'{score:.2f}  {s:.1f}-{e:.1f}s')
        y += row_h
    if gt_windows is not None:
        cv2.putText(img, 'GT', (margin, y + 15), font, 0.45, _GT, 1, cv2.LINE_AA)
        cv2.rectangle(img, (x0, y + 4), (x1, y + row_h - 4), (245, 245, 245), -1)
        for s, e in gt_windows:
            cv2.rectangle(img, (x_of(s), y + 4), (max(x_of(e), x_of(s) + 1), y + row_h - 4),
                          _GT, -1)
        y += row_h

    # saliency curve, 0..1 scale, with the predicted windows shaded behind it
    top, bottom = y + 6, y + curve_h - 4
    for s, e, _ in windows[:1]:
        cv2.rectangle(img, (x_of(s), top), (x_of(e), bottom), (225, 232, 250), -1)
    for frac in (0.0, 0.5, 1.0):
        yy = int(bottom - frac * (bottom - top))
        cv2.line(img, (x0, yy), (x1, yy), _GRID, 1)
    cv2.putText(img, 'saliency', (margin, top + 14), font, 0.45, _CURVE, 1, cv2.LINE_AA)
    sal = np.clip(np.asarray(saliency, dtype=np.float64).reshape(-1), 0, 1)
    if len(sal):
        centres = (np.arange(len(sal)) + 0.5) * clip_len
        pts = np.stack([[x_of(t) for t in centres],
                        (bottom - sal * (bottom - top)).round().astype(int)], 1)
        cv2.polylines(img, [pts.astype(np.int32)], False, _CURVE, 2, cv2.LINE_AA)
    y += curve_h

    # time axis
    cv2.line(img, (x0, y), (x1, y), _TEXT, 1)
    step = max(1.0, float(np.ceil(duration / 10)))
    t = 0.0
    while t <= duration + 1e-6:
        cv2.line(img, (x_of(t), y), (x_of(t), y + 4), _TEXT, 1)
        cv2.putText(img, f'{t:g}s', (x_of(t) - 8, y + 17), font, 0.38, _TEXT, 1, cv2.LINE_AA)
        t += step
    return img
