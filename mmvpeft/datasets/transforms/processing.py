"""Processing transforms: frame-index sampling, resize, crop and tensor layout.

Loaders (:mod:`.loading`) choose frame indices with the samplers below and decode them;
the transforms here then work on the decoded stack without changing its axes. The layout
is the data contract of :mod:`.formatting`: ``imgs`` is ``(T, K, H, W, 3)`` uint8 from the
loader, and :class:`FormatVideo` makes it the ``(T, K, 3, H, W)`` tensor the model takes.

Frame-index samplers:

- :func:`sample_clip_frame_inds`: a time grid of fixed-length clips (grounding). Clip ``i``
  covers ``[i * clip_len_eff, (i + 1) * clip_len_eff)`` seconds, ``K = frames_per_clip``.
- :func:`sample_segment_frame_inds`: ``T`` frames spread over the whole video (retrieval,
  captioning, QA), one per equal segment, ``'uniform'`` (segment centres, for evaluation) or
  ``'random'`` (TSN-style, for training; NumPy's global generator, which MMEngine seeds per
  dataloader worker). A video with ``n < T`` frames repeats frames in temporal order (e.g.
  ``n = 3, T = 8`` gives ``0 0 0 1 1 2 2 2`` uniformly), or with ``short_video='keep'``
  yields its ``n`` frames once each and the collate pads them.
- :func:`uniform_subsample`: evenly spaced rows of a feature sequence.
"""
import math
from typing import Dict, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from mmcv.transforms import BaseTransform

from mmvpeft.registry import TRANSFORMS

# Float slack: duration / clip_len = 8.0000001 -> 8 clips; t * fps = 1.9999999 -> frame 2.
_EPS = 1e-6
SAMPLINGS = ('uniform', 'random')
SHORT_VIDEO = ('repeat', 'keep')


def sample_ident(results: Dict) -> str:
    """``' (qid=..., vid=...)'`` for error messages, empty when neither is known."""
    parts = [f'{k}={results[k]}' for k in ('qid', 'vid') if results.get(k) is not None]
    return f' ({", ".join(parts)})' if parts else ''


def sample_clip_frame_inds(num_frames: int,
                           fps: float,
                           duration: Optional[float] = None,
                           clip_len: float = 2.0,
                           frames_per_clip: int = 1,
                           max_clips: Optional[int] = None) -> Tuple[np.ndarray, float]:
    """Frame indices sampled at the centres of each clip's sub-segments.

    ``num_clips = ceil(duration / clip_len)``. If that exceeds ``max_clips``,
    the time axis is resampled to exactly ``max_clips`` equal clips spanning
    ``[0, duration)``, i.e. ``clip_len_eff = duration / max_clips``; this keeps
    ``clip_index * clip_len_eff = seconds`` true, which picking a subset of the
    original 2 s clips would not.

    Clip ``i`` is split into ``frames_per_clip`` equal sub-segments; the frame
    shown at each sub-segment centre ``t`` is ``floor(t * fps)`` (frame ``n`` is
    displayed during ``[n / fps, (n + 1) / fps)``), clamped to the last frame,
    so times past the end of a short video repeat its last frame.

    Args:
        num_frames: Frames in the video (> 0).
        fps: Frame rate of the video (> 0).
        duration: Seconds to cover; defaults to the video's own length
            ``num_frames / fps``.
        clip_len: Seconds per clip before any resampling.
        frames_per_clip: Frames sampled per clip.
        max_clips: Upper bound on the number of clips, or None.

    Returns:
        tuple: ``frame_inds`` int64 ``(num_clips, frames_per_clip)`` 0-based,
        and ``clip_len_eff`` (float seconds per clip).
    """
    if num_frames <= 0 or not fps > 0:
        raise ValueError(f'need num_frames > 0 and fps > 0, got {num_frames}, {fps}')
    if duration is None:
        duration = num_frames / fps
    num_clips = max(1, math.ceil(duration / clip_len - _EPS))
    clip_len_eff = float(clip_len)
    if max_clips is not None and num_clips > max_clips:
        num_clips = max_clips
        clip_len_eff = duration / max_clips
    # (num_clips, F) centre times in seconds.
    offsets = (np.arange(frames_per_clip) + 0.5) * (clip_len_eff / frames_per_clip)
    times = np.arange(num_clips)[:, None] * clip_len_eff + offsets[None, :]
    inds = np.floor(times * fps + _EPS).astype(np.int64)
    return np.clip(inds, 0, num_frames - 1), clip_len_eff


def sample_segment_frame_inds(num_video_frames: int,
                              num_frames: int,
                              sampling: str = 'uniform',
                              short_video: str = 'repeat',
                              rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """One frame index per equal segment of ``[0, num_video_frames)``.

    Args:
        num_video_frames: Frames ``n`` in the video (> 0).
        num_frames: Frames ``T`` to sample (> 0).
        sampling: ``'uniform'`` (segment centres) or ``'random'`` (one random frame per
            segment).
        short_video: If ``n < T``: ``'repeat'`` keeps ``T`` indices (frames repeat, in
            order); ``'keep'`` returns ``arange(n)``.
        rng: Generator for ``'random'``; NumPy's global one when None.

    Returns:
        np.ndarray: int64 ``(T,)`` (or ``(n,)`` for a short video with ``'keep'``),
        non-decreasing, within ``[0, n - 1]``.
    """
    if num_video_frames <= 0:
        raise ValueError(f'the video has no frames ({num_video_frames})')
    if short_video == 'keep' and num_video_frames < num_frames:
        return np.arange(num_video_frames, dtype=np.int64)
    if sampling == 'uniform':
        pos = np.arange(num_frames) + 0.5
    elif sampling == 'random':
        u = rng.random(num_frames) if rng is not None else np.random.random(num_frames)
        pos = np.arange(num_frames) + u
    else:
        raise ValueError(f'sampling must be one of {SAMPLINGS}, got {sampling!r}')
    inds = np.floor(pos * (num_video_frames / num_frames)).astype(np.int64)
    # u < 1 keeps floor inside the segment; the clip only guards float round-off.
    return np.clip(inds, 0, num_video_frames - 1)



def uniform_subsample(num: int, max_num: Optional[int]) -> np.ndarray:
    """Indices of ``max_num`` evenly spaced items out of ``num`` (all if ``num <= max_num``)."""
    if max_num is None or num <= max_num:
        return np.arange(num)
    return np.floor((np.arange(max_num) + 0.5) * num / max_num).astype(np.int64)


_INTERPOLATIONS = {
    'nearest': cv2.INTER_NEAREST,
    'bilinear': cv2.INTER_LINEAR,
    'bicubic': cv2.INTER_CUBIC,
    'area': cv2.INTER_AREA,
}


@TRANSFORMS.register_module()
class VideoResize(BaseTransform):
    """Resize every frame so its short side is ``short_side``, keeping aspect.

    Required keys: ``imgs`` uint8 ``(T, K, H, W, 3)``. Modified: ``imgs`` ->
    ``(T, K, H', W', 3)`` with ``min(H', W') = short_side``; ``img_shape``.

    cv2 resizes one frame per call (INTER_AREA takes at most 4 channels, and
    stacking frames as channels measured slower), so frames are written into
    one preallocated array.

    Args:
        short_side: Target length of the shorter side.
        interpolation: ``'auto'`` (area when shrinking: anti-aliased; bilinear
            when enlarging), or one of ``'nearest'``, ``'bilinear'``,
            ``'bicubic'``, ``'area'``.
    """

    def __init__(self, short_side: int = 224, interpolation: str = 'auto') -> None:
        if short_side < 1:
            raise ValueError(f'short_side must be >= 1, got {short_side}')
        if interpolation != 'auto' and interpolation not in _INTERPOLATIONS:
            raise ValueError(f'unknown interpolation {interpolation!r}; choose auto or '
                             f'one of {sorted(_INTERPOLATIONS)}')
        self.short_side = int(short_side)
        self.interpolation = interpolation

    def transform(self, results: Dict) -> Dict:
        imgs = results['imgs']
        h, w = imgs.shape[-3:-1]
        scale = self.short_side / min(h, w)
        new_h, new_w = (self.short_side, max(1, round(w * scale))) if h <= w else \
            (max(1, round(h * scale)), self.short_side)
        results['img_shape'] = (new_h, new_w)
        if (new_h, new_w) == (h, w):
            return results
        if self.interpolation == 'auto':
            flag = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        else:
            flag = _INTERPOLATIONS[self.interpolation]
        flat = imgs.reshape((-1, h, w, imgs.shape[-1]))
        out = np.empty((flat.shape[0], new_h, new_w, flat.shape[-1]), imgs.dtype)
        for i in range(flat.shape[0]):
            out[i] = cv2.resize(flat[i], (new_w, new_h), interpolation=flag)
        results['imgs'] = out.reshape(imgs.shape[:-3] + out.shape[1:])
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(short_side={self.short_side}, '
                f'interpolation={self.interpolation!r})')


@TRANSFORMS.register_module()
class VideoCenterCrop(BaseTransform):
    """Crop the centre ``(h, w)`` of every frame (one slice for all frames).

    Required keys: ``imgs`` ``(..., H, W, C)``. Modified: ``imgs`` ->
    ``(..., h, w, C)`` (a view; :class:`FormatVideo` makes it contiguous),
    ``img_shape``. Added: ``crop_bbox`` ``(x1, y1, x2, y2)``.

    Args:
        size: Crop size, int for square or ``(h, w)``.

    Raises:
        ValueError: the frames are smaller than the crop (put
            :class:`VideoResize` first).
    """

    def __init__(self, size: Union[int, Sequence[int]] = 224) -> None:
        self.size = (int(size), int(size)) if isinstance(size, int) else tuple(map(int, size))
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f'size must be a positive int or (h, w), got {size}')

    def transform(self, results: Dict) -> Dict:
        imgs = results['imgs']
        h, w = imgs.shape[-3:-1]
        ch, cw = self.size
        if ch > h or cw > w:
            raise ValueError(f'cannot crop {self.size} from frames of {(h, w)}'
                             f'{sample_ident(results)}; resize first')
        # Same rounding as torchvision's center_crop.
        y1, x1 = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
        results['imgs'] = imgs[..., y1:y1 + ch, x1:x1 + cw, :]
        results['img_shape'] = (ch, cw)
        results['crop_bbox'] = (x1, y1, x1 + cw, y1 + ch)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(size={self.size})'


@TRANSFORMS.register_module()
class FormatVideo(BaseTransform):
    """Turn ``imgs`` into a contiguous torch uint8 tensor, channels first.

    Modified: ``imgs`` uint8 ``(T, K, H, W, 3)`` ndarray -> uint8
    ``torch.Tensor`` ``(T, K, 3, H, W)``. Stays uint8 (4x smaller to collate and
    transfer); CLIP normalisation is done in the model on the device.
    """

    def transform(self, results: Dict) -> Dict:
        imgs = results['imgs']
        if imgs.ndim != 5 or imgs.dtype != np.uint8:
            raise ValueError('FormatVideo expects uint8 (T, K, H, W, 3), got '
                             f'{imgs.dtype} {imgs.shape}{sample_ident(results)}')
        results['imgs'] = torch.from_numpy(
            np.ascontiguousarray(imgs.transpose(0, 1, 4, 2, 3)))
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}()'
