"""Pieces shared by the per-task result pictures (opencv + numpy): frame strips, wrapped
text, stacking, and the base metric that ``tools/test.py --show-dir`` appends to the test
evaluator."""
import os
import os.path as osp
import re
from typing import Any, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmvpeft.utils.fileio import write_bytes_atomic

FONT = cv2.FONT_HERSHEY_SIMPLEX
TEXT = (40, 40, 40)        # BGR
GREY = (120, 120, 120)
GOOD = (60, 150, 40)       # correct (green)
BAD = (40, 40, 200)        # wrong (red)
# 0.5 is about 11 px cap height: readable at 100 % zoom.
SCALE = 0.5
LINE_H = 20
WIDTH = 820
MARGIN = 12


def frame_strip(video_path: Optional[str], num: int = 6, height: int = 96,
                frame_inds: Optional[Sequence[int]] = None) -> Optional[np.ndarray]:
    """``num`` frames of a video side by side, each ``height`` px high.

    Args:
        video_path: the video file; ``None`` or unreadable gives ``None`` (the picture
            is then drawn without frames).
        num: frames shown, spread evenly over ``frame_inds`` (the frames the model saw)
            when given, else over the whole video.
        height: frame height in pixels.

    Returns:
        BGR uint8 ``(height, W, 3)``, or ``None``.
    """
    if not video_path or not osp.isfile(video_path):
        return None
    import decord
    try:
        vr = decord.VideoReader(video_path, ctx=decord.cpu(0))
        n = len(vr)
        pool = [int(i) for i in np.asarray(frame_inds).reshape(-1)] if frame_inds is not None \
            and len(np.asarray(frame_inds).reshape(-1)) else list(range(n))
        pick = [pool[int(round(x))] for x in np.linspace(0, len(pool) - 1, min(num, len(pool)))]
        frames = vr.get_batch([min(max(i, 0), n - 1) for i in pick]).asnumpy()
    except Exception:  # frames are decoration: the text still tells the result
        return None
    tiles = []
    for rgb in frames:
        h, w = rgb.shape[:2]
        tile = cv2.resize(rgb, (max(1, int(round(w * height / h))), height),
                          interpolation=cv2.INTER_LINEAR)
        tiles.append(cv2.cvtColor(tile, cv2.COLOR_RGB2BGR))
        tiles.append(np.full((height, 4, 3), 255, np.uint8))
    return np.concatenate(tiles[:-1], axis=1)


def wrap(text: str, width: int, scale: float = SCALE) -> List[str]:
    """Split ``text`` into lines no wider than ``width`` pixels at ``scale``."""
    lines, line = [], ''
    for word in str(text).split():
        trial = f'{line} {word}'.strip()
        if line and cv2.getTextSize(trial, FONT, scale, 1)[0][0] > width:
            lines.append(line)
            line = word
        else:
            line = trial
    lines.append(line)
    return lines


def text_block(lines: Sequence[Tuple[str, Tuple[int, int, int]]], width: int = WIDTH,
               scale: float = SCALE, indent: int = 0) -> np.ndarray:
    """White block with ``(text, BGR colour)`` lines, each wrapped to ``width``."""
    rows = [(piece, colour) for text, colour in lines
            for piece in wrap(text, width - 2 * MARGIN - indent, scale)]
    img = np.full((LINE_H * len(rows) + 6, width, 3), 255, np.uint8)
    for k, (piece, colour) in enumerate(rows):
        cv2.putText(img, piece, (MARGIN + indent, LINE_H * (k + 1) - 4), FONT, scale, colour,
                    1, cv2.LINE_AA)
    return img


def place(img: Optional[np.ndarray], width: int = WIDTH, left: int = MARGIN,
          border: Optional[Tuple[int, int, int]] = None, pad: int = 4) -> np.ndarray:
    """``img`` on a white row of ``width`` px (shrunk to fit), optionally framed."""
    if img is None:
        return np.full((0, width, 3), 255, np.uint8)
    room = width - left - MARGIN
    if img.shape[1] > room:
        img = cv2.resize(img, (room, max(1, img.shape[0] * room // img.shape[1])),
                         interpolation=cv2.INTER_AREA)
    row = np.full((img.shape[0] + 2 * pad, width, 3), 255, np.uint8)
    row[pad:pad + img.shape[0], left:left + img.shape[1]] = img
    if border is not None:
        cv2.rectangle(row, (left - 3, 1), (left + img.shape[1] + 2, row.shape[0] - 2), border, 3)
    return row


def stack(parts: Sequence[np.ndarray], width: int = WIDTH) -> np.ndarray:
    """Stack rows of equal ``width`` top to bottom, with a white margin."""
    parts = [p for p in parts if p is not None and p.shape[0]]
    gap = np.full((6, width, 3), 255, np.uint8)
    return np.concatenate([gap] + [x for p in parts for x in (p, gap)], axis=0)


def safe_name(value: Any, limit: int = 40) -> str:
    """A file-name-safe version of an id."""
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', str(value))[:limit].strip('._') or 'item'


def save_png(path: str, img: np.ndarray) -> None:
    """Encode ``img`` (BGR) as PNG and write it atomically."""
    ok, buf = cv2.imencode('.png', img)
    if not ok:
        raise OSError(f'cannot encode {path} as PNG')
    write_bytes_atomic(path, buf.tobytes())


class ShowMetric(BaseMetric):
    """Base of the ``--show-dir`` visualizers: keeps the first ``show_num`` predictions of
    the test set, draws them on rank 0 in :meth:`compute_metrics` and returns no metric.

    Subclasses set :attr:`required` (data-sample keys the picture needs) and implement
    :meth:`record` (what to keep of one sample) and :meth:`draw` (the pictures).

    Args:
        out_dir: folder of the PNGs; created when missing.
        show_num: at most this many pictures.
    """

    default_prefix: Optional[str] = 'show'  # no metric is returned; silences MMEngine's warning
    required: Tuple[str, ...] = ()

    def __init__(self, out_dir: str, show_num: int = 20, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if int(show_num) < 1:
            raise ValueError(f'show_num must be >= 1, got {show_num}')
        self.out_dir, self.show_num = out_dir, int(show_num)

    def keep_all(self) -> bool:
        """Whether every sample is needed (retrieval ranks over the whole set)."""
        return False

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            if not self.keep_all() and len(self.results) >= self.show_num:
                return
            missing = [k for k in self.required if k not in sample]
            if missing:
                raise KeyError(f'{type(self).__name__} (--show-dir) needs {missing} in each '
                               f'data sample; it has {sorted(sample)}')
            self.results.append(self.record(sample))

    def record(self, sample: dict) -> dict:
        raise NotImplementedError

    def draw(self, results: List[dict]) -> List[Tuple[str, np.ndarray]]:
        """``[(file name, BGR image)]``, at most :attr:`show_num`."""
        raise NotImplementedError

    def compute_metrics(self, results: List[dict]) -> dict:
        os.makedirs(self.out_dir, exist_ok=True)
        pictures = self.draw(results)[:self.show_num]
        for name, img in pictures:
            save_png(osp.join(self.out_dir, name), img)
        print_log(f'wrote {len(pictures)} pictures to {self.out_dir}', logger='current')
        return {}
