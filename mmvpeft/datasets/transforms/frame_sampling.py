"""Sample a fixed number of frames spread over a whole video (text-video retrieval).

Grounding needs a time grid (:mod:`.video_loading`); retrieval only needs ``T`` frames that
summarise the video. The video's frames ``[0, n)`` are cut into ``T`` equal segments
``[k * n / T, (k + 1) * n / T)`` and one frame is taken per segment:

- ``'uniform'``: the frame at the segment centre, ``floor((k + 0.5) * n / T)``.
  Deterministic; use it for evaluation.
- ``'random'``: a uniformly random position in each segment, ``floor((k + u_k) * n / T)``
  with ``u_k ~ U[0, 1)`` (TSN-style; use it for training). It draws from NumPy's global
  generator, which MMEngine seeds per dataloader worker.

A video with fewer than ``T`` frames (``n < T``) has segments shorter than one frame, so the
formulas above pick some frames several times, in temporal order (e.g. ``n = 3, T = 8`` gives
``0 0 0 1 1 2 2 2`` for uniform): the output always has ``T`` frames. With
``short_video='keep'`` such a video yields its ``n`` frames once each instead, and the
collate function pads it and marks the padding in ``video_mask``.

Output layout is that of :class:`~.video_loading.LoadVideoClips` with one frame per clip,
``imgs (T, 1, H, W, 3)``, so ``VideoResize``, ``VideoCenterCrop`` and ``FormatVideo`` apply
unchanged; ``PackRetrievalInputs`` then drops the singleton axis.
"""
from typing import Dict, Optional

import numpy as np

from mmvpeft.registry import TRANSFORMS
from .video_loading import LoadFrameFolder, LoadVideoClips

_SAMPLINGS = ('uniform', 'random')
_SHORT_VIDEO = ('repeat', 'keep')


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
        raise ValueError(f'sampling must be one of {_SAMPLINGS}, got {sampling!r}')
    inds = np.floor(pos * (num_video_frames / num_frames)).astype(np.int64)
    # u < 1 keeps floor inside the segment; the clip only guards float round-off.
    return np.clip(inds, 0, num_video_frames - 1)


class _SegmentSamplerMixin:
    """Replaces the clip-grid plan of the grounding loaders by segment sampling."""

    def _init_segments(self, num_frames: int, sampling: str, short_video: str,
                       max_duration: Optional[float]) -> None:
        if int(num_frames) < 1:
            raise ValueError(f'num_frames must be >= 1, got {num_frames}')
        if sampling not in _SAMPLINGS:
            raise ValueError(f'sampling must be one of {_SAMPLINGS}, got {sampling!r}')
        if short_video not in _SHORT_VIDEO:
            raise ValueError(f'short_video must be one of {_SHORT_VIDEO}, got {short_video!r}')
        if max_duration is not None and not max_duration > 0:
            raise ValueError(f'max_duration must be > 0 or None, got {max_duration}')
        self.num_frames = int(num_frames)
        self.sampling = sampling
        self.short_video = short_video
        self.max_duration = max_duration

    def _plan(self, results: Dict, num_frames: int, fps: float, source: str) -> np.ndarray:
        """Called by the parent loader's ``transform``; returns ``(T, 1)`` indices."""
        n = num_frames
        if self.max_duration is not None:
            n = max(1, min(n, int(round(self.max_duration * fps))))
        inds = sample_segment_frame_inds(n, self.num_frames, self.sampling, self.short_video)
        results['frame_inds'] = inds
        results['video_num_frames'] = int(num_frames)
        if not results.get('_nominal_fps'):
            results['video_fps'] = float(fps)
            results['video_duration'] = num_frames / fps
        # (T, 1): the parent decodes each distinct index once and stores (T, 1, H, W, 3).
        return inds[:, None]

    def _segment_repr(self) -> str:
        return (f'num_frames={self.num_frames}, sampling={self.sampling!r}, '
                f'short_video={self.short_video!r}, max_duration={self.max_duration}')


@TRANSFORMS.register_module()
class LoadVideoFrames(_SegmentSamplerMixin, LoadVideoClips):
    """Decode ``num_frames`` frames spread over a whole video file with decord.

    Required keys: ``video_path``. Optional: ``vid`` (named in errors).

    Added keys:
        - imgs (np.ndarray): uint8 RGB ``(T, 1, H, W, 3)``; ``T = num_frames`` (fewer for a
          short video with ``short_video='keep'``).
        - frame_inds (np.ndarray): int64 ``(T,)`` decoded 0-based frame indices.
        - video_num_frames (int), video_fps (float), video_duration (float).
        - img_shape, ori_shape (tuple): ``(H, W)``.

    Args:
        num_frames: Frames ``T`` per video (8 in Token Mixing and CLIP4Clip's MSR-VTT runs
            use 12).
        sampling: ``'uniform'`` (segment centres, deterministic: test) or ``'random'``
            (one random frame per segment: train). See the module docstring.
        short_video: ``'repeat'`` (default: a video with fewer than ``T`` frames repeats
            frames to give ``T``) or ``'keep'`` (return its frames once each; the collate
            pads them and masks them out in ``video_mask``).
        max_duration: If set, sample only the first ``max_duration`` seconds (CLIP4Clip
            reads DiDeMo videos up to 31 s, the annotated span).
        num_threads: decord decoding threads.

    Raises:
        FileNotFoundError: ``video_path`` does not exist.
        VideoReadError: decord cannot open or decode the file (the message names it).
    """

    def __init__(self,
                 num_frames: int = 8,
                 sampling: str = 'uniform',
                 short_video: str = 'repeat',
                 max_duration: Optional[float] = None,
                 num_threads: int = 1) -> None:
        super().__init__(num_threads=num_threads)
        self._init_segments(num_frames, sampling, short_video, max_duration)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self._segment_repr()}, '
                f'num_threads={self.num_threads})')


@TRANSFORMS.register_module()
class LoadFramesFromFolder(_SegmentSamplerMixin, LoadFrameFolder):
    """Frame-folder variant of :class:`LoadVideoFrames`.

    Layout and file naming as in :class:`~.video_loading.LoadFrameFolder`:
    ``results['frame_dir']/img_00001.jpg, ...``; frame ``k`` (0-based) is
    ``filename_tmpl.format(k + start_index)``. Only the files of the sampled frames are read.

    Required keys: ``frame_dir``. Optional: ``total_frames`` (skips listing the folder),
    ``fps`` (only used with ``max_duration``), ``vid``. Added keys as in
    :class:`LoadVideoFrames` (``video_fps``/``video_duration`` only when an fps is known).

    Args:
        num_frames, sampling, short_video, max_duration: As in :class:`LoadVideoFrames`.
        fps: Frame rate the frames were extracted at; needed only with ``max_duration``
            (else ``results['fps']`` is used when present).
        filename_tmpl: Frame file name with one ``{}`` field for the number.
        start_index: Number of the first frame file.
    """

    def __init__(self,
                 num_frames: int = 8,
                 sampling: str = 'uniform',
                 short_video: str = 'repeat',
                 max_duration: Optional[float] = None,
                 fps: Optional[float] = None,
                 filename_tmpl: str = 'img_{:05d}.jpg',
                 start_index: int = 1) -> None:
        super().__init__(fps=fps, filename_tmpl=filename_tmpl, start_index=start_index)
        self._init_segments(num_frames, sampling, short_video, max_duration)

    def transform(self, results: Dict) -> Dict:
        # The parent needs an fps to build its time grid; segment sampling does not,
        # so a nominal 1 fps stands in when none is known (and is not reported).
        if self.fps is not None or results.get('fps') is not None:
            return super().transform(results)
        if self.max_duration is not None:
            raise ValueError(f'LoadFramesFromFolder(max_duration=...) needs fps (argument '
                             f'or results["fps"]) for {results.get("frame_dir")}')
        results['fps'], results['_nominal_fps'] = 1.0, True
        try:
            return super().transform(results)
        finally:
            del results['fps'], results['_nominal_fps']

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self._segment_repr()}, fps={self.fps}, '
                f'filename_tmpl={self.filename_tmpl!r}, start_index={self.start_index})')
