"""Loading transforms: decode video files, frame folders and pre-extracted features.

Every video loader writes the contract layout of :mod:`.formatting`: ``imgs`` uint8
``(T, K, H, W, 3)`` (RGB), ``T`` time steps of ``K`` frames each (``K = 1`` when frames, not
clips, are sampled), plus ``frame_inds`` and the time-axis keys. Frame indices come from the
samplers of :mod:`.processing`:

- :class:`LoadVideoClips` / :class:`LoadFrameFolder`: a time grid of fixed-length clips
  (grounding). Clip ``i`` covers ``[i * clip_len_eff, (i + 1) * clip_len_eff)`` seconds and
  ``results['clip_len_eff']`` is always written, so ``seconds = clip_index * clip_len_eff``
  holds whether or not the clips were resampled to respect ``max_clips``.
- :class:`LoadVideoFrames` / :class:`LoadFramesFromFolder`: ``T`` frames spread over the
  whole video (retrieval, captioning, QA), ``K = 1``.
- :class:`LoadClipFeatures` / :class:`LoadTextFeatures`: pre-extracted features in the layout
  of the public releases: ``{feat_dir}/{vid}.npz['features']`` (or ``{vid}.npy``), one row per
  clip, and ``{feat_dir}/qid{qid}.npz['last_hidden_state']``; several video sources (CLIP +
  SlowFast) are concatenated along the channel axis.

Pipeline order: a loader -> ``VideoResize`` -> ``VideoCenterCrop`` -> ``FormatVideo``
(:mod:`.processing`) -> a ``Pack*`` transform (:mod:`.formatting`). Pixels stay uint8 up to
the model; CLIP normalisation runs on the device.

cv2 is imported at module level and decord only when a video is read: decord exports an old
zlib that breaks cv2's PNG reader if decord is loaded first (see :func:`_cv2_png_broken`).
"""
import math
import os
import os.path as osp
import re
import warnings
import zipfile
from typing import Dict, Optional, Sequence, Tuple, Union

# cv2 must load before decord (imported lazily below): see _cv2_png_broken.
import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from mmvpeft.registry import TRANSFORMS
from ..base import resolve_item_path
from .processing import (SAMPLINGS, SHORT_VIDEO, sample_clip_frame_inds, sample_ident,
                         sample_segment_frame_inds, uniform_subsample)

# VideoReadError lives with the timing and size checks; it is imported from here as before.
from .video_checks import (VideoMemoryError, VideoReadError, VideoTimingError,  # noqa: F401
                           check_decode_memory, check_frame_rate, check_video_timing,
                           default_decode_limit, probe_video)


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

    # Loaders of a clip grid can hand a lazy handle to a streaming reader instead of
    # decoding (``stream=True``); the segment samplers below cannot.
    streamable = True

    def _check_stream(self, stream: bool) -> bool:
        if stream and self.max_clips is not None:
            raise ValueError(f'{type(self).__name__}(stream=True) reads the video window by '
                             f'window at clip_len={self.clip_len}; it cannot resample to '
                             f'max_clips={self.max_clips} (set max_clips=None)')
        return bool(stream)

    def _plan(self, results: Dict, num_frames: int, fps: float,
              source: str, warn_short: bool = True) -> np.ndarray:
        """Sample frame indices and write the time-axis keys into ``results``
        (``warn_short=False``: the caller has compared the lengths itself)."""
        video_duration = num_frames / fps
        duration = results.get('duration')
        duration = video_duration if duration is None else float(duration)
        # Less than one clip short is normal rounding between annotation and
        # container; more means a truncated download or wrong annotation, and the
        # tail clips become copies of the last frame.
        if warn_short and duration - video_duration > self.clip_len:
            warnings.warn(
                f'{source}{sample_ident(results)} lasts {video_duration:.2f}s but '
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
        max_decode_bytes: Refuse (before decoding) a video whose frames would take more
            bytes than this (estimated from the container's frame count and frame size,
            :mod:`.video_checks`); None: a quarter of physical memory; ``float('inf')``:
            no limit.
        stream: Decode nothing: open and check the video, plan its clips (all the keys
            above but ``imgs``, ``img_shape``, ``ori_shape``) and write
            ``results['video_stream']``, a plain-dict handle that
            :func:`~.video_stream.open_stream` turns into a
            :class:`~.video_stream.ClipStream` reading the clips window by window. The
            long-video test loop (:mod:`mmvpeft.engine.loops`) sets it; needs
            ``max_clips=None``. The memory check is skipped (nothing is decoded whole).

    Timing: the decoded length (decord's frames / fps), the container's claim and the
    annotation's ``duration`` differing by more than one clip give one warning per file
    naming the three; a zero, negative, NaN or absurd (> 1000) fps is an error.

    Raises:
        FileNotFoundError: ``video_path`` does not exist.
        VideoReadError: decord cannot open or decode the file, or it has no
            frames / no valid fps (``VideoTimingError``).
        VideoMemoryError: the decode would exceed ``max_decode_bytes``.
    """

    def __init__(self,
                 clip_len: float = 2.0,
                 frames_per_clip: int = 1,
                 max_clips: Optional[int] = None,
                 num_threads: int = 1,
                 max_decode_bytes: Optional[float] = None,
                 stream: bool = False) -> None:
        self._init_clips(clip_len, frames_per_clip, max_clips)
        self.stream = self._check_stream(stream)
        self.num_threads = int(num_threads)
        if max_decode_bytes is not None and not max_decode_bytes > 0:
            raise ValueError(f'max_decode_bytes must be > 0 or None, got {max_decode_bytes}')
        self.max_decode_bytes = max_decode_bytes

    decode_knob = 'max_clips'  # named when a video is refused as too large

    def planned_frames(self, results: Dict, probe: Dict) -> int:
        """Frames the plan will sample for this video: clips (bounded by ``max_clips``) x
        frames per clip, over the annotation's duration or the container's."""
        duration = results.get('duration') or probe['duration'] or 0.0
        clips = max(1, math.ceil(float(duration) / self.clip_len))
        if self.max_clips is not None:
            clips = min(clips, self.max_clips)
        return clips * self.frames_per_clip

    def timing_tolerance(self, seconds: float) -> float:
        """Seconds two length figures may differ by: one clip."""
        return self.clip_len

    def check_memory(self, results: Dict, path: str, probe: Optional[Dict]) -> None:
        """The one memory check before decoding (a streaming reader skips it)."""
        if probe is None:
            return
        limit = (self.max_decode_bytes if self.max_decode_bytes is not None else
                 default_decode_limit())
        check_decode_memory(path, self.planned_frames(results, probe), probe, limit,
                            sample_ident(results), self.decode_knob, type(self).__name__)

    def transform(self, results: Dict) -> Dict:
        import decord  # deferred: only this loader needs it

        path = results['video_path']
        ident = sample_ident(results)
        if not osp.isfile(path):
            raise FileNotFoundError(f'video file not found: {path}{ident}')
        probe = probe_video(path)  # the container's header: nothing decoded yet
        if not self.stream:
            self.check_memory(results, path, probe)
        try:
            vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=self.num_threads)
            num_frames, fps = len(vr), float(vr.get_avg_fps())
        except Exception as e:  # decord raises RuntimeError or DECORDError
            raise VideoReadError(
                f'cannot open video {path}{ident}: {_short_reason(e)}') from e
        if num_frames <= 0:
            raise VideoReadError(
                f'cannot read video {path}{ident}: {num_frames} frames at fps={fps}')
        check_frame_rate(fps, path, ident)
        claimed = probe['duration'] if probe else None
        detail = f' (decoded {num_frames} frames at {fps:g} fps' + (
            f'; container {probe["frames"]} frames at {probe["fps"]:g} fps)' if probe else ')')
        check_video_timing(path, num_frames / fps, claimed, results.get('duration'),
                           self.timing_tolerance(max(num_frames / fps, claimed or 0)), ident,
                           detail)

        frame_inds = self._plan(results, num_frames, fps, f'video {path}', warn_short=False)
        if self.stream:
            del vr
            results['video_stream'] = dict(
                kind='video', video_path=path, clip_len=self.clip_len,
                frames_per_clip=self.frames_per_clip, num_threads=self.num_threads,
                duration=results.get('duration'))
            return results
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
                f'num_threads={self.num_threads}, stream={self.stream})')


def _short_reason(e: BaseException) -> str:
    """One line for an exception: decord's messages carry C++ log prefixes/traces."""
    lines = str(e).strip().splitlines()
    msg = re.sub(r'\[\d\d:\d\d:\d\d\] \S+:\d+: ', '', lines[0] if lines else '')[:300]
    return f'{type(e).__name__}: {msg}' if msg else type(e).__name__


def read_frame_files(frame_dir: str, filename_tmpl: str, start_index: int,
                     inds: Sequence[int], ident: str = '') -> np.ndarray:
    """``(len(inds), H, W, 3)`` uint8 BGR frames (as cv2 reads them) of a frame folder:
    0-based frame ``n`` is file ``filename_tmpl.format(n + start_index)``.

    Raises:
        FileNotFoundError: a frame file is missing.
        VideoReadError: cv2 cannot decode one, or frames differ in shape.
    """
    frames = None
    for k, ind in enumerate(inds):
        path = osp.join(frame_dir, filename_tmpl.format(int(ind) + start_index))
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
            frames = np.empty((len(inds), ) + img.shape, np.uint8)
        elif img.shape != frames.shape[1:]:
            raise VideoReadError(f'frame {path}{ident} has shape {img.shape}, '
                                 f'expected {frames.shape[1:]}')
        frames[k] = img
    return frames


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
        stream: As in :class:`LoadVideoClips`: read no frame, write the time-axis keys and
            a ``results['video_stream']`` handle for a
            :class:`~.video_stream.FrameFolderStream`.

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
                 start_index: int = 1,
                 stream: bool = False) -> None:
        self._init_clips(clip_len, frames_per_clip, max_clips)
        self.stream = self._check_stream(stream)
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
        ident = sample_ident(results)
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
        if self.stream:
            results['video_stream'] = dict(
                kind='frames', frame_dir=frame_dir, num_frames=int(num_frames),
                fps=float(fps), clip_len=self.clip_len, frames_per_clip=self.frames_per_clip,
                duration=results.get('duration'), filename_tmpl=self.filename_tmpl,
                start_index=self.start_index)
            return results
        uniq, inverse = np.unique(frame_inds, return_inverse=True)
        frames = read_frame_files(frame_dir, self.filename_tmpl, self.start_index,
                                  uniq.tolist(), ident)
        # BGR -> RGB on the whole stack at once.
        imgs = np.ascontiguousarray(frames[inverse.reshape(frame_inds.shape)][..., ::-1])
        self._store_imgs(results, imgs)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(clip_len={self.clip_len}, '
                f'frames_per_clip={self.frames_per_clip}, fps={self.fps}, '
                f'filename_tmpl={self.filename_tmpl!r}, max_clips={self.max_clips}, '
                f'start_index={self.start_index}, stream={self.stream})')


class _SegmentSamplerMixin:
    """Replaces the clip-grid plan of the grounding loaders by segment sampling."""
    streamable = False  # T frames over the whole video: no window to stream

    def _init_segments(self, num_frames: int, sampling: str, short_video: str,
                       max_duration: Optional[float]) -> None:
        if int(num_frames) < 1:
            raise ValueError(f'num_frames must be >= 1, got {num_frames}')
        if sampling not in SAMPLINGS:
            raise ValueError(f'sampling must be one of {SAMPLINGS}, got {sampling!r}')
        if short_video not in SHORT_VIDEO:
            raise ValueError(f'short_video must be one of {SHORT_VIDEO}, got {short_video!r}')
        if max_duration is not None and not max_duration > 0:
            raise ValueError(f'max_duration must be > 0 or None, got {max_duration}')
        self.num_frames = int(num_frames)
        self.sampling = sampling
        self.short_video = short_video
        self.max_duration = max_duration

    def _plan(self, results: Dict, num_frames: int, fps: float, source: str,
              warn_short: bool = True) -> np.ndarray:
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
            (one random frame per segment: train); see
            :func:`~.processing.sample_segment_frame_inds`.
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
                 num_threads: int = 1,
                 max_decode_bytes: Optional[float] = None) -> None:
        super().__init__(num_threads=num_threads, max_decode_bytes=max_decode_bytes)
        self._init_segments(num_frames, sampling, short_video, max_duration)

    decode_knob = 'num_frames'

    def planned_frames(self, results: Dict, probe: Dict) -> int:
        return self.num_frames

    def timing_tolerance(self, seconds: float) -> float:
        """One sampled segment of the video."""
        return seconds / self.num_frames

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self._segment_repr()}, '
                f'num_threads={self.num_threads})')


@TRANSFORMS.register_module()
class LoadFramesFromFolder(_SegmentSamplerMixin, LoadFrameFolder):
    """Frame-folder variant of :class:`LoadVideoFrames`.

    Layout and file naming as in :class:`LoadFrameFolder`:
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


def _load_array(stem: str, key: str, qid, vid) -> Tuple[np.ndarray, str]:
    """Load ``stem.npz[key]`` or ``stem.npy``: ``(array, path)``; errors (missing, truncated,
    NaN / inf values) name the file and the query."""
    for path in (stem + '.npz', stem + '.npy'):
        if osp.isfile(path):
            break
    else:
        raise FileNotFoundError(f'feature file not found: {stem}.npz (or .npy), needed by '
                                f'qid={qid!r} vid={vid!r}')
    try:
        if path.endswith('.npy'):
            array = np.load(path)
        else:
            with np.load(path) as data:
                if key not in data:
                    raise KeyError(f'feature file {path} (qid={qid!r}) has no key "{key}"; '
                                   f'keys: {list(data.keys())}')
                array = data[key]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        # A truncated or empty .npz raises BadZipFile / EOFError deep inside numpy.
        raise OSError(f'cannot read feature file {path} (qid={qid!r}, vid={vid!r}): it is '
                      f'truncated or not a numpy file ({type(e).__name__}: {e}); re-extract '
                      'or re-download it') from e
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise ValueError(f'feature file {path} (qid={qid!r}, vid={vid!r}) holds {bad} NaN/inf '
                         f'value(s) of {array.size}; re-extract it')
    return array, path


def _check_dir(path: str, what: str) -> None:
    if not osp.isdir(path):
        raise FileNotFoundError(f'{what} folder not found: {path}. See docs/data_preparation.md for '
                                'where the public feature releases go.')


@TRANSFORMS.register_module()
class LoadClipFeatures(BaseTransform):
    """Load per-clip video features for ``results['vid']``.

    Args:
        feat_dirs: one folder or several (their features are concatenated; lengths that
            differ by rounding are cut to the shortest).
        key: array name inside ``.npz`` files.
        clip_len: seconds per feature row.
        max_clips: if the video has more clips, evenly subsample them; ``clip_len_eff``
            records the seconds each kept row stands for.
        l2_normalize: L2-normalise each source per row (as moment_detr does).
        dims: expected width of each source, checked per item; None leaves it to the
            dataset check at build time (a file wider or narrower than most of its folder's
            files is an error, see :mod:`mmvpeft.datasets.grounding.validation`).
        feature_rate: None (default: each row is taken as ``clip_len`` seconds),
            ``'resample'`` or ``'error'``: rows at another rate than ``clip_len`` (judged
            against the item's ``duration``) are resampled with a warning, or refused (see
            :func:`~.video_stream.match_feature_rate`; the ``long_video`` switch sets it).

    Adds:
        video_feat (T, D) float32, video_feat_files (the files read), num_clips, clip_len,
        clip_len_eff.

    Raises:
        OSError: a truncated / unreadable file; ValueError: NaN or inf values, or a width
        other than ``dims`` (each naming the file).
    """

    def __init__(self,
                 feat_dirs: Union[str, Sequence[str]],
                 key: str = 'features',
                 clip_len: float = 2.0,
                 max_clips: Optional[int] = None,
                 l2_normalize: bool = True,
                 dims: Optional[Sequence[int]] = None,
                 feature_rate: Optional[str] = None):
        if feature_rate not in (None, 'resample', 'error'):
            raise ValueError(f'LoadClipFeatures feature_rate must be None, "resample" or '
                             f'"error", got {feature_rate!r}')
        self.feature_rate = feature_rate
        self.dims = None if dims is None else [int(d) for d in dims]
        self.feat_dirs = [feat_dirs] if isinstance(feat_dirs, str) else list(feat_dirs)
        for d in filter(osp.isabs, self.feat_dirs):  # relative: under the item's data_root
            _check_dir(d, f'video feature (expects {{vid}}.npz with key "{key}", one row per '
                          f'{clip_len:g} s clip)')
        self.key = key
        self.clip_len = clip_len
        self.max_clips = max_clips
        self.l2_normalize = l2_normalize

    def transform(self, results: dict) -> dict:
        feats, files = [], []
        for i, d in enumerate(self.feat_dirs):
            folder = resolve_item_path(results, d)  # d is relative to the item's data_root
            f, path = _load_array(osp.join(folder, results['vid']), self.key, results.get('qid'),
                                  results['vid'])
            f = f.astype(np.float32)
            files.append(path)
            if f.ndim != 2 or len(f) == 0:
                raise ValueError(f'video features of vid={results["vid"]!r} in {path} must be '
                                 f'a non-empty (T, D) array, got shape {f.shape}')
            if self.dims is not None and f.shape[1] != self.dims[i]:
                raise ValueError(f'feature file {path} (vid={results["vid"]!r}) is '
                                 f'{f.shape[1]} wide, expected (T, {self.dims[i]}) like the '
                                 f'other files of {d}')
            if self.l2_normalize:
                f = f / np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-6)
            feats.append(f)
        num = min(len(f) for f in feats)
        feat = np.concatenate([f[:num] for f in feats], axis=-1)
        if self.feature_rate is not None:
            from .video_stream import match_feature_rate
            feat, _ = match_feature_rate(feat, results.get('duration'), self.clip_len,
                                         self.feature_rate, source=files[0])
            num = len(feat)
        keep = uniform_subsample(num, self.max_clips)
        results['video_feat'] = feat[keep]
        results['video_feat_files'] = files
        results['num_clips'] = len(keep)
        results['clip_len'] = self.clip_len
        results['clip_len_eff'] = self.clip_len * num / len(keep)
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}(feat_dirs={self.feat_dirs}, key={self.key!r}, '
                f'clip_len={self.clip_len}, max_clips={self.max_clips})')


@TRANSFORMS.register_module()
class LoadTextFeatures(BaseTransform):
    """Load per-token query features from ``{feat_dir}/{prefix}{qid}.npz[key]``.

    Adds:
        text_feat (L, D) float32, L <= max_len.
    """

    def __init__(self,
                 feat_dir: str,
                 key: str = 'last_hidden_state',
                 prefix: str = 'qid',
                 max_len: int = 32,
                 l2_normalize: bool = True,
                 dim: Optional[int] = None):
        self.dim = dim
        if osp.isabs(feat_dir):  # relative: under the item's data_root
            _check_dir(feat_dir, f'text feature (expects {prefix}{{qid}}.npz with key "{key}")')
        self.feat_dir = feat_dir
        self.key = key
        self.prefix = prefix
        self.max_len = max_len
        self.l2_normalize = l2_normalize

    def transform(self, results: dict) -> dict:
        qid = results['qid']
        f, path = _load_array(osp.join(resolve_item_path(results, self.feat_dir),
                                       f'{self.prefix}{qid}'), self.key, qid,
                              results.get('vid'))
        f = f.astype(np.float32)
        results['text_feat_file'] = path
        if f.ndim == 3 and f.shape[0] == 1:  # some releases keep a batch axis
            f = f[0]
        if f.ndim != 2 or len(f) == 0:
            raise ValueError(f'text features of qid={qid!r} in {path} must be a non-empty '
                             f'(L, D) array, got shape {f.shape}')
        if self.dim is not None and f.shape[1] != self.dim:
            raise ValueError(f'feature file {path} (qid={qid!r}) is {f.shape[1]} wide, '
                             f'expected (L, {self.dim}) like the other files of '
                             f'{self.feat_dir}')
        f = f[:self.max_len]
        if self.l2_normalize:
            f = f / np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-6)
        results['text_feat'] = f
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}(feat_dir={self.feat_dir!r}, key={self.key!r}, '
                f'max_len={self.max_len})')
