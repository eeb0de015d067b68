"""Raw-video loading transforms for temporal language grounding.

A video is cut into fixed-length clips on a time grid: clip ``i`` covers
``[i * clip_len_eff, (i + 1) * clip_len_eff)`` seconds. Every loader writes
``results['clip_len_eff']`` so downstream code can convert between seconds and
clip indices with ``seconds = clip_index * clip_len_eff``, whether or not the
clips were resampled to respect ``max_clips``.

Pipeline order: ``LoadVideoClips`` (or ``LoadFrameFolder``) -> ``VideoResize``
-> ``VideoCenterCrop`` -> ``FormatVideo``. Pixels stay uint8 up to the model;
CLIP normalisation runs on the device.
"""
import math
import os
import os.path as osp
import re
import warnings
from typing import Dict, Optional, Sequence, Tuple, Union

# cv2 must load before decord (imported lazily below): see _cv2_png_broken.
import cv2
import numpy as np
import torch
from mmcv.transforms import BaseTransform

from mmvpeft.registry import TRANSFORMS

# Float slack: duration / clip_len = 8.0000001 -> 8 clips; t * fps = 1.9999999 -> frame 2.
_EPS = 1e-6


class VideoReadError(RuntimeError):
    """A video (or an extracted frame) exists but cannot be opened or decoded."""


# A valid 1x1 RGB PNG, to tell a corrupt frame file from a broken PNG codec.
_PROBE_PNG = (b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01'
              b'\x08\x02\x00\x00\x00\x90wS\xde\x00\x00\x00\x0cIDAT\x08\x1dc`fb\x04\x00'
              b'\x00\x12\x00\x07_\x9bs\xb1\x00\x00\x00\x00IEND\xaeB`\x82')


def _cv2_png_broken() -> bool:
    """True when cv2 cannot decode a valid PNG in this process.

    decord 0.6 loads its bundled zlib 1.2.3 with RTLD_GLOBAL; if decord is
    imported before cv2, cv2's libpng binds to it and every PNG read fails
    ("libpng error: bad parameters to zlib"). JPEG and BMP are unaffected.
    """
    return cv2.imdecode(np.frombuffer(_PROBE_PNG, np.uint8), cv2.IMREAD_COLOR) is None


def _sample_ident(results: Dict) -> str:
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


class _ClipLoaderMixin:
    """Argument checks, sampling and short-video warning shared by the loaders."""

    def _init_clips(self, clip_len: float, frames_per_clip: int,
                    max_clips: Optional[int]) -> None:
        if not clip_len > 0:
            raise ValueError(f'clip_len must be > 0, got {clip_len}')
        if frames_per_clip < 1:
            raise ValueError(f'frames_per_clip must be >= 1, got {frames_per_clip}')
        if max_clips is not None and max_clips < 1:
            raise ValueError(f'max_clips must be >= 1 or None, got {max_clips}')
        self.clip_len = float(clip_len)
        self.frames_per_clip = int(frames_per_clip)
        self.max_clips = max_clips

    def _plan(self, results: Dict, num_frames: int, fps: float,
              source: str) -> np.ndarray:
        """Sample frame indices and write the time-axis keys into ``results``."""
        video_duration = num_frames / fps
        duration = results.get('duration')
        duration = video_duration if duration is None else float(duration)
        # Less than one clip short is normal rounding between annotation and
        # container; more means a truncated download or wrong annotation, and the
        # tail clips become copies of the last frame.
        if duration - video_duration > self.clip_len:
            warnings.warn(
                f'{source}{_sample_ident(results)} lasts {video_duration:.2f}s but '
                f'the annotation says {duration:.2f}s; clips past the end repeat '
                'the last frame', stacklevel=3)
        frame_inds, clip_len_eff = sample_clip_frame_inds(
            num_frames, fps, duration, self.clip_len, self.frames_per_clip,
            self.max_clips)
        results['frame_inds'] = frame_inds
        results['num_clips'] = frame_inds.shape[0]
        results['clip_len_eff'] = clip_len_eff
        results['video_fps'] = float(fps)
        results['video_num_frames'] = int(num_frames)
        results['video_duration'] = video_duration
        return frame_inds

    @staticmethod
    def _store_imgs(results: Dict, imgs: np.ndarray) -> None:
        results['imgs'] = imgs
        results['img_shape'] = imgs.shape[2:4]
        results['ori_shape'] = imgs.shape[2:4]


@TRANSFORMS.register_module()
class LoadVideoClips(_ClipLoaderMixin, BaseTransform):
    """Decode fixed-length clips from a video file with decord.

    Required keys: ``video_path``. Optional: ``duration`` (annotation seconds;
    the video's own length when absent), ``qid``/``vid`` (named in errors).

    Added keys:
        - imgs (np.ndarray): uint8 RGB ``(num_clips, frames_per_clip, H, W, 3)``.
        - num_clips (int), clip_len_eff (float): clip ``i`` covers
          ``[i * clip_len_eff, (i + 1) * clip_len_eff)`` seconds.
        - frame_inds (np.ndarray): int64 ``(num_clips, frames_per_clip)``,
          0-based decoded frame indices.
        - video_fps (float), video_num_frames (int), video_duration (float).
        - img_shape, ori_shape (tuple): ``(H, W)``.

    A video shorter than ``duration`` is padded with its last frame (warning
    when more than one ``clip_len`` short); a longer one is cut at ``duration``.

    Args:
        clip_len: Seconds per clip (2.0 matches TaCoS and the public
            CLIP/SlowFast features).
        frames_per_clip: Frames sampled per clip, at sub-segment centres.
        max_clips: If ``ceil(duration / clip_len)`` exceeds it, the video is
            resampled into exactly ``max_clips`` clips of
            ``clip_len_eff = duration / max_clips`` seconds.
        num_threads: decord decoding threads.

    Raises:
        FileNotFoundError: ``video_path`` does not exist.
        VideoReadError: decord cannot open or decode the file, or it has no
            frames / no valid fps.
    """

    def __init__(self,
                 clip_len: float = 2.0,
                 frames_per_clip: int = 1,
                 max_clips: Optional[int] = None,
                 num_threads: int = 1) -> None:
        self._init_clips(clip_len, frames_per_clip, max_clips)
        self.num_threads = int(num_threads)

    def transform(self, results: Dict) -> Dict:
        import decord  # deferred: only this loader needs it

        path = results['video_path']
        ident = _sample_ident(results)
        if not osp.isfile(path):
            raise FileNotFoundError(f'video file not found: {path}{ident}')
        try:
            vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=self.num_threads)
            num_frames, fps = len(vr), float(vr.get_avg_fps())
        except Exception as e:  # decord raises RuntimeError or DECORDError
            raise VideoReadError(
                f'cannot open video {path}{ident}: {_short_reason(e)}') from e
        if num_frames <= 0 or not math.isfinite(fps) or fps <= 0:
            raise VideoReadError(
                f'cannot read video {path}{ident}: {num_frames} frames at fps={fps}')

        frame_inds = self._plan(results, num_frames, fps, f'video {path}')
        # Decode each distinct frame once, in order, in a single call; clamped
        # padding and overlapping sub-segments produce duplicates.
        uniq, inverse = np.unique(frame_inds, return_inverse=True)
        try:
            batch = vr.get_batch(uniq.tolist())
            frames = batch.asnumpy() if hasattr(batch, 'asnumpy') else batch.numpy()
        except Exception as e:
            raise VideoReadError(
                f'cannot decode video {path}{ident}: {_short_reason(e)}') from e
        finally:
            del vr
        imgs = frames[inverse.reshape(frame_inds.shape)]
        self._store_imgs(results, imgs)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(clip_len={self.clip_len}, '
                f'frames_per_clip={self.frames_per_clip}, max_clips={self.max_clips}, '
                f'num_threads={self.num_threads})')


def _short_reason(e: BaseException) -> str:
    """One line for an exception: decord's messages carry C++ log prefixes/traces."""
    lines = str(e).strip().splitlines()
    msg = re.sub(r'\[\d\d:\d\d:\d\d\] \S+:\d+: ', '', lines[0] if lines else '')[:300]
    return f'{type(e).__name__}: {msg}' if msg else type(e).__name__


@TRANSFORMS.register_module()
class LoadFrameFolder(_ClipLoaderMixin, BaseTransform):
    """Load fixed-length clips from frames already extracted at a known fps.

    Layout: ``results['frame_dir']/img_00001.jpg, img_00002.jpg, ...``; frame
    ``n`` (0-based) is file ``filename_tmpl.format(n + start_index)`` and is
    shown during ``[n / fps, (n + 1) / fps)``. Clip sampling, padding and added
    keys are exactly those of :class:`LoadVideoClips` (``frame_inds`` are
    0-based), so both loaders give the same clips for the same frames.

    Required keys: ``frame_dir``. Optional: ``duration``, ``total_frames``
    (skips listing the folder), ``fps`` (used when ``fps`` is None here),
    ``qid``/``vid``.

    Args:
        clip_len: Seconds per clip.
        frames_per_clip: Frames sampled per clip.
        fps: Frame rate the frames were extracted at; None reads
            ``results['fps']`` per sample.
        filename_tmpl: Frame file name with one ``{}`` field for the number.
        max_clips: As in :class:`LoadVideoClips`.
        start_index: Number of the first frame file.

    Raises:
        FileNotFoundError: the folder, or a needed frame file, is missing or the
            folder holds no frames matching ``filename_tmpl``.
        VideoReadError: cv2 cannot decode a frame file.
    """

    def __init__(self,
                 clip_len: float = 2.0,
                 frames_per_clip: int = 1,
                 fps: Optional[float] = None,
                 filename_tmpl: str = 'img_{:05d}.jpg',
                 max_clips: Optional[int] = None,
                 start_index: int = 1) -> None:
        self._init_clips(clip_len, frames_per_clip, max_clips)
        if fps is not None and not fps > 0:
            raise ValueError(f'fps must be > 0 or None, got {fps}')
        self.fps = fps
        self.filename_tmpl = filename_tmpl
        self.start_index = int(start_index)
        # Prefix/suffix around the number field, to count frames in a listing.
        head, _, rest = filename_tmpl.partition('{')
        self._prefix, self._suffix = head, rest.partition('}')[2]

    def _count_frames(self, frame_dir: str) -> int:
        return sum(1 for name in os.listdir(frame_dir)
                   if name.startswith(self._prefix) and name.endswith(self._suffix))

    def transform(self, results: Dict) -> Dict:
        frame_dir = results['frame_dir']
        ident = _sample_ident(results)
        if not osp.isdir(frame_dir):
            raise FileNotFoundError(f'frame folder not found: {frame_dir}{ident}')
        fps = self.fps if self.fps is not None else results.get('fps')
        if fps is None:
            raise ValueError(f'LoadFrameFolder needs fps (argument or results["fps"]) '
                             f'for {frame_dir}{ident}')
        num_frames = results.get('total_frames')
        if num_frames is None:
            num_frames = self._count_frames(frame_dir)
        if num_frames <= 0:
            raise FileNotFoundError(
                f'no frames matching {self.filename_tmpl!r} in {frame_dir}{ident}')

        frame_inds = self._plan(results, num_frames, float(fps), f'frame folder {frame_dir}')
        uniq, inverse = np.unique(frame_inds, return_inverse=True)
        frames = None
        for k, ind in enumerate(uniq.tolist()):
            path = osp.join(frame_dir, self.filename_tmpl.format(ind + self.start_index))
            img = cv2.imread(path, cv2.IMREAD_COLOR)
            if img is None:
                if not osp.isfile(path):
                    raise FileNotFoundError(f'frame file not found: {path}{ident}')
                hint = ''
                if path.lower().endswith('.png') and _cv2_png_broken():
                    hint = ('; cv2 cannot decode any PNG in this process: decord was '
                            'imported before cv2 and its bundled zlib broke libpng; '
                            'import cv2 first, or use jpg/bmp frames')
                raise VideoReadError(f'cannot decode frame {path}{ident}{hint}')
            if frames is None:
                frames = np.empty((len(uniq), ) + img.shape, np.uint8)
            elif img.shape != frames.shape[1:]:
                raise VideoReadError(f'frame {path}{ident} has shape {img.shape}, '
                                     f'expected {frames.shape[1:]}')
            frames[k] = img
        # BGR -> RGB on the whole stack at once.
        imgs = np.ascontiguousarray(frames[inverse.reshape(frame_inds.shape)][..., ::-1])
        self._store_imgs(results, imgs)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(clip_len={self.clip_len}, '
                f'frames_per_clip={self.frames_per_clip}, fps={self.fps}, '
                f'filename_tmpl={self.filename_tmpl!r}, max_clips={self.max_clips}, '
                f'start_index={self.start_index})')


_INTERPOLATIONS = {
    'nearest': cv2.INTER_NEAREST,
    'bilinear': cv2.INTER_LINEAR,
    'bicubic': cv2.INTER_CUBIC,
    'area': cv2.INTER_AREA,
}


@TRANSFORMS.register_module()
class VideoResize(BaseTransform):
    """Resize every frame so its short side is ``short_side``, keeping aspect.

    Required keys: ``imgs`` uint8 ``(N, F, H, W, 3)``. Modified: ``imgs`` ->
    ``(N, F, H', W', 3)`` with ``min(H', W') = short_side``; ``img_shape``.

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
                             f'{_sample_ident(results)}; resize first')
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

    Modified: ``imgs`` uint8 ``(N, F, H, W, 3)`` ndarray -> uint8
    ``torch.Tensor`` ``(N, F, 3, H, W)``. Stays uint8 (4x smaller to collate and
    transfer); CLIP normalisation is done in the model on the device.
    """

    def transform(self, results: Dict) -> Dict:
        imgs = results['imgs']
        if imgs.ndim != 5 or imgs.dtype != np.uint8:
            raise ValueError('FormatVideo expects uint8 (N, F, H, W, 3), got '
                             f'{imgs.dtype} {imgs.shape}{_sample_ident(results)}')
        results['imgs'] = torch.from_numpy(
            np.ascontiguousarray(imgs.transpose(0, 1, 4, 2, 3)))
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}()'
