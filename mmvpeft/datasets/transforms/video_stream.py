"""Read a long video window by window, and match clip features to the config's clip length.

:class:`ClipStream` plans the clips of a whole video at the config's ``clip_len`` (no
``max_clips`` resampling) and decodes only the clips of the window asked for, so memory
holds one window of frames (plus the overlap with the next window, kept so overlapping
windows do not decode a frame twice), whatever the video's length. It writes the keys
:class:`~.loading.LoadVideoClips` writes, so the rest of the test pipeline (resize, crop,
format, tokenize, pack) runs on each window unchanged.

:func:`match_feature_rate` handles clip features extracted at another rate than the
config's ``clip_len`` (for example 1 s features with a 2 s config): resampled with a
warning, or refused, by the ``feature_rate`` knob.
"""
import math
import os.path as osp
import warnings
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from .processing import sample_clip_frame_inds

FEATURE_RATE_POLICIES = ('resample', 'error')


def resample_rows(feat: np.ndarray, num_out: int) -> np.ndarray:
    """Resample ``(T, D)`` rows, each standing for an equal share of the same span, to
    ``(num_out, D)`` by area averaging: output row ``j`` is the mean of the input signal
    (piecewise constant over rows) over ``[j, j + 1) * T / num_out``. Works both ways
    (down: pooling, up: repeating) and keeps a constant signal constant."""
    t = len(feat)
    if num_out < 1:
        raise ValueError(f'num_out must be >= 1, got {num_out}')
    if num_out == t:
        return feat
    cum = np.concatenate([np.zeros((1, feat.shape[1])), np.cumsum(feat, axis=0, dtype=np.float64)])
    edges = np.arange(num_out + 1) * (t / num_out)
    lo = np.minimum(np.floor(edges).astype(np.int64), t - 1)
    # integral of the piecewise-constant signal from 0 to x
    integral = cum[lo] + (edges - lo)[:, None] * feat[lo].astype(np.float64)
    return ((integral[1:] - integral[:-1]) / (t / num_out)).astype(feat.dtype)


def match_feature_rate(feat: np.ndarray, duration: Optional[float], clip_len: float,
                       policy: str = 'resample', source: str = 'features',
                       feat_clip_len: Optional[float] = None) -> Tuple[np.ndarray, bool]:
    """Make ``(T, D)`` clip features one row per ``clip_len`` seconds.

    The features' own rate is ``feat_clip_len`` seconds per row when given, else inferred
    from ``duration / T``. Rows that match ``clip_len`` to within one row over the video (the
    usual rounding of the last clip) are left alone.

    Args:
        feat: ``(T, D)`` features.
        duration: the video's seconds (annotation); None with ``feat_clip_len`` None means
            the rate cannot be checked and the features are returned as they are.
        clip_len: the config's seconds per row.
        policy: ``'resample'`` (warn and resample to ``ceil(duration / clip_len)`` rows) or
            ``'error'``.
        source: named in the warning / error (a file path).
        feat_clip_len: the features' seconds per row, when known.

    Returns:
        ``(features, resampled)``.

    Raises:
        ValueError: ``policy='error'`` and the rates differ, naming the knob to set.
    """
    if policy not in FEATURE_RATE_POLICIES:
        raise ValueError(f'feature_rate must be one of {FEATURE_RATE_POLICIES}, got {policy!r}')
    t = len(feat)
    if feat_clip_len is None:
        if duration is None or not duration > 0:
            return feat, False
        if abs(t * clip_len - duration) <= clip_len + 1e-6:
            return feat, False
        feat_clip_len = duration / t
    elif math.isclose(feat_clip_len, clip_len, rel_tol=1e-6):
        return feat, False
    span = duration if duration else t * feat_clip_len
    num_out = max(1, math.ceil(span / clip_len - 1e-6))
    msg = (f'{source}: {t} feature rows for {span:.1f} s is one row per {feat_clip_len:.3g} s, '
           f'but the config\'s clip_len is {clip_len:g} s')
    if policy == 'error':
        raise ValueError(f'{msg}. Set long_video.feature_rate=\'resample\' (or the loader\'s '
                         f'feature_rate=\'resample\') to resample them to {num_out} rows, or set '
                         f'the loader\'s clip_len={feat_clip_len:.3g} to match the features '
                         '(the model was trained at its own clip_len)')
    warnings.warn(f'{msg}; resampled to {num_out} rows of {clip_len:g} s (set '
                  'feature_rate=\'error\' to refuse instead)', stacklevel=2)
    # The rows cover t * feat_clip_len seconds; resample that span, then cut to num_out.
    covered = max(1, math.ceil(t * feat_clip_len / clip_len - 1e-6))
    out = resample_rows(feat, covered)
    if len(out) < num_out:  # the annotation runs past the features: repeat the last row
        out = np.concatenate([out, np.repeat(out[-1:], num_out - len(out), axis=0)])
    return out[:num_out], True


class ClipStream:
    """Decode a video file's clips window by window.

    Args:
        video_path: the video file.
        clip_len: seconds per clip (the config's loader ``clip_len``).
        frames_per_clip: frames per clip.
        num_threads: decord threads.
        duration: seconds to cover (default: the video's own length).

    Attributes:
        num_clips (int): clips of the whole video, ``ceil(duration / clip_len)``.
        fps, num_frames, video_duration: the container's.
        frame_inds (np.ndarray): int64 ``(num_clips, frames_per_clip)``, the whole plan (the
            loader's ``frame_inds`` for the same video and duration).
        decoded_frames (int): frames decoded so far (a frame decoded again counts again).
        peak_frames (int): the most decoded frames this stream held at once (its cache of
            one window): the figure that must not grow with the video.

    Raises:
        FileNotFoundError / VideoReadError: as :class:`~.loading.LoadVideoClips`.
    """

    def __init__(self, video_path: str, clip_len: float = 2.0, frames_per_clip: int = 1,
                 num_threads: int = 1, duration: Optional[float] = None):
        import decord  # deferred, as in loading.py (cv2 must load first)

        from .loading import VideoReadError, _short_reason
        if not osp.isfile(video_path):
            raise FileNotFoundError(f'video file not found: {video_path}')
        try:
            self._vr = decord.VideoReader(video_path, ctx=decord.cpu(0),
                                          num_threads=int(num_threads))
            num_frames, fps = len(self._vr), float(self._vr.get_avg_fps())
        except Exception as e:
            raise VideoReadError(f'cannot open video {video_path}: {_short_reason(e)}') from e
        self._error = VideoReadError
        self._reason = _short_reason
        self._setup(video_path, num_frames, fps, clip_len, frames_per_clip, duration)

    def _setup(self, path: str, num_frames: int, fps: float, clip_len: float,
               frames_per_clip: int, duration: Optional[float]) -> None:
        self.num_frames, self.fps = int(num_frames), float(fps)
        if self.num_frames <= 0 or not math.isfinite(self.fps) or self.fps <= 0:
            raise self._error(f'cannot read video {path}: {self.num_frames} frames '
                              f'at fps={self.fps}')
        self.path = path
        self.clip_len = float(clip_len)
        self.video_duration = self.num_frames / self.fps
        self.duration = self.video_duration if duration is None else float(duration)
        # Only indices (num_clips x frames_per_clip int64) are planned for the whole video.
        self.frame_inds, _ = sample_clip_frame_inds(self.num_frames, self.fps, self.duration,
                                                    self.clip_len, int(frames_per_clip), None)
        self.num_clips = len(self.frame_inds)
        self._cache: Dict[int, np.ndarray] = {}
        self.decoded_frames = 0
        self.peak_frames = 0

    def _read(self, inds: List[int]) -> np.ndarray:
        """``(len(inds), H, W, 3)`` uint8 RGB frames, in the order of ``inds``."""
        batch = self._vr.get_batch(inds)
        return batch.asnumpy() if hasattr(batch, 'asnumpy') else batch.numpy()

    def window(self, start: int, end: int, keep_from: Optional[int] = None) -> Dict:
        """The loader's keys for clips ``[start, end)``, as if they were a whole video.

        Args:
            keep_from: first clip of the next window: decoded frames of clips from there on
                are kept for it, everything else is dropped.
        """
        inds = self.frame_inds[start:end]
        uniq, inverse = np.unique(inds, return_inverse=True)
        todo = [i for i in uniq.tolist() if i not in self._cache]
        if todo:
            try:
                frames = self._read(todo)
            except (self._error, FileNotFoundError):
                raise
            except Exception as e:
                raise self._error(f'cannot decode video {self.path} (clips {start}-{end}): '
                                  f'{self._reason(e)}') from e
            self._cache.update(zip(todo, frames))
            self.decoded_frames += len(todo)
        self.peak_frames = max(self.peak_frames, len(self._cache))
        stack = np.stack([self._cache[i] for i in uniq.tolist()])
        imgs = stack[inverse.reshape(inds.shape)]
        first_kept = self.frame_inds[keep_from].min() if keep_from is not None and \
            keep_from < self.num_clips else None
        self._cache = {} if first_kept is None else \
            {i: f for i, f in self._cache.items() if i >= first_kept}
        return dict(imgs=imgs, img_shape=imgs.shape[2:4], ori_shape=imgs.shape[2:4],
                    frame_inds=inds, num_clips=end - start, clip_len_eff=self.clip_len,
                    video_fps=self.fps, video_num_frames=self.num_frames,
                    video_duration=self.video_duration)

    def close(self) -> None:
        self._cache = {}
        self._vr = None


class FrameFolderStream(ClipStream):
    """:class:`ClipStream` over a folder of extracted frames (:class:`~.loading.LoadFrameFolder`'s
    layout): the same plan, frames read from their files window by window.

    Args:
        frame_dir: the folder.
        num_frames: frames in it (the loader counts them, or the annotation's
            ``total_frames``).
        fps: the rate they were extracted at.
        clip_len, frames_per_clip, duration: as :class:`ClipStream`.
        filename_tmpl, start_index: as :class:`~.loading.LoadFrameFolder`.
    """

    def __init__(self, frame_dir: str, num_frames: int, fps: float, clip_len: float = 2.0,
                 frames_per_clip: int = 1, duration: Optional[float] = None,
                 filename_tmpl: str = 'img_{:05d}.jpg', start_index: int = 1):
        from .loading import VideoReadError, _short_reason
        if not osp.isdir(frame_dir):
            raise FileNotFoundError(f'frame folder not found: {frame_dir}')
        self._error, self._reason = VideoReadError, _short_reason
        self._tmpl, self._start = filename_tmpl, int(start_index)
        self._vr = None
        self._setup(frame_dir, num_frames, fps, clip_len, frames_per_clip, duration)

    def _read(self, inds: List[int]) -> np.ndarray:
        from .loading import read_frame_files
        bgr = read_frame_files(self.path, self._tmpl, self._start, inds)
        return np.ascontiguousarray(bgr[..., ::-1])


def open_stream(handle: Dict) -> ClipStream:
    """The stream a streaming loader's ``results['video_stream']`` handle describes
    (:class:`~.loading.LoadVideoClips` / :class:`~.loading.LoadFrameFolder` with
    ``stream=True``): a plain dict, so it crosses data-loader worker processes."""
    handle = dict(handle)
    kind = handle.pop('kind')
    if kind == 'video':
        return ClipStream(**handle)
    if kind == 'frames':
        return FrameFolderStream(**handle)
    raise ValueError(f'unknown video_stream kind {kind!r}; expected "video" or "frames"')


def load_feature_array(video: Union[str, np.ndarray], key: str = 'features') -> np.ndarray:
    """``(T, D)`` float32 clip features from an array, a ``.npy`` or a ``.npz[key]`` file."""
    if isinstance(video, np.ndarray):
        feat = video
    else:
        from .loading import _load_array
        stem = video[:-4] if video.endswith(('.npz', '.npy')) else video
        feat, _ = _load_array(stem, key, None, osp.basename(stem))
    feat = np.asarray(feat, np.float32)
    if feat.ndim != 2 or len(feat) == 0:
        raise ValueError(f'clip features must be a non-empty (T, D) array, got {feat.shape}')
    return feat
