"""Checks of a video file's timing and size, run by the video loaders (and so by every tool
that decodes through a config's pipeline: training, testing, ``init_grounder``,
``tools/demo.py``).

* :func:`probe_video`: what the container claims (frame count, frame rate, frame size),
  read from its header with OpenCV, without decoding a frame.
* :func:`check_frame_rate`: a zero, negative, NaN, infinite or absurd (> :data:`MAX_FPS`)
  frame rate is a :class:`VideoTimingError` naming the file.
* :func:`check_video_timing`: the decoded length (frames / fps of the reader that decodes),
  the container's claim and the annotation's duration must agree within one clip; else one
  warning per file naming the three figures.
* :func:`check_decode_memory`: the bytes a decode would hold, estimated from the container's
  frame count and frame size and the loader's plan, against a limit
  (:func:`default_decode_limit`: a quarter of physical memory); over it is a
  :class:`VideoMemoryError` naming the file, the estimate and ``max_clips``, raised before
  anything is decoded. A streaming reader that decodes in chunks skips this one call.
"""
import math
import os
import warnings
from typing import Dict, Optional

import cv2

#: Frame rates above this are a broken header (or a timescale typo), not a real camera.
MAX_FPS = 1000.0
#: Share of physical memory one video's decode may use by default.
DEFAULT_DECODE_FRACTION = 0.25

_TIMING_WARNED = set()  # files already warned about in this process (one warning each)


class VideoReadError(RuntimeError):
    """A video (or an extracted frame) exists but cannot be opened or decoded."""


class VideoTimingError(VideoReadError):
    """A video whose frame rate cannot be true (zero, negative, NaN, inf or > MAX_FPS)."""


class VideoMemoryError(RuntimeError):
    """Decoding a video as configured would need more memory than the limit allows."""


_PROBES: Dict[tuple, Optional[Dict[str, float]]] = {}  # (path, mtime, size) -> claim


def probe_video(path: str) -> Optional[Dict[str, float]]:
    """The container's claim about ``path``, from its header (nothing is decoded). Kept per
    file (path, modification time and size) for the process: a training run reads each
    header once, not once per epoch.

    Returns:
        dict or None: ``frames`` (the container's frame count), ``fps``, ``width``,
        ``height`` and ``duration`` (``frames / fps``, None when the fps is not usable);
        None when OpenCV cannot open the file (the decoder then names the problem).
    """
    try:
        st = os.stat(path)
        key = (path, st.st_mtime_ns, st.st_size)
    except OSError:
        key = None
    if key in _PROBES:
        return _PROBES[key]
    claim = _probe(path)
    if key is not None:
        _PROBES[key] = claim
    return claim


def _probe(path: str) -> Optional[Dict[str, float]]:
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            return None
        frames = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        fps = cap.get(cv2.CAP_PROP_FPS)
        width, height = cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
    finally:
        cap.release()
    usable = math.isfinite(fps) and 0 < fps <= MAX_FPS and frames > 0
    return dict(frames=int(frames) if frames > 0 else 0, fps=float(fps), width=int(width),
                height=int(height), duration=frames / fps if usable else None)


def check_frame_rate(fps: float, path: str, ident: str = '', source: str = 'decoder') -> None:
    """Refuse a frame rate no video has.

    Raises:
        VideoTimingError: ``fps`` is not a finite number in ``(0, MAX_FPS]``; the message
            names the file.
    """
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and 0 < fps <= MAX_FPS):
        raise VideoTimingError(
            f'video {path}{ident}: the {source} reports a frame rate of {fps} fps, which no '
            f'video has (it must be > 0 and at most {MAX_FPS:g}); its container\'s timing is '
            'broken: re-encode it (e.g. ffmpeg -i IN -r 25 OUT.mp4)')


def check_video_timing(path: str, decoded: float, claimed: Optional[float],
                       annotated: Optional[float], tolerance: float, ident: str = '',
                       detail: str = '') -> Optional[str]:
    """Warn once per file when the decoded length, the container's claim and the
    annotation's duration disagree by more than ``tolerance`` seconds (one clip).

    Args:
        path: the video file.
        decoded: seconds the decoder will deliver (its frame count / its fps).
        claimed: seconds the container claims (:func:`probe_video`), None if unknown.
        annotated: the annotation's duration, None if there is none (e.g. at inference).
        tolerance: allowed difference in seconds: one clip (or one sampled segment).
        ident: ``' (qid=..., vid=...)'`` of the item.
        detail: frame counts and rates behind the figures, for the message.

    Returns:
        str or None: the warning's text, None when the figures agree (or this file was
        already reported in this process).
    """
    figures = [('decoded', decoded), ('container', claimed), ('annotation', annotated)]
    known = [v for _, v in figures if v is not None and math.isfinite(v)]
    if len(known) < 2 or max(known) - min(known) <= tolerance or path in _TIMING_WARNED:
        return None
    _TIMING_WARNED.add(path)
    said = ', '.join(f'{name} {"unknown" if v is None else f"{v:.2f} s"}'
                     for name, v in figures)
    msg = (f'video {path}{ident}: lengths disagree by more than one clip ({tolerance:g} s): '
           f'{said}{detail}. Its frame timing or the annotation is wrong; clips are placed '
           'on the decoded timeline, so windows in seconds may point at the wrong frames. '
           'Re-encode the video or fix the duration.')
    warnings.warn(msg, stacklevel=3)
    return msg


def _size(n: float) -> str:
    for unit, scale in (('GiB', 2**30), ('MiB', 2**20), ('KiB', 2**10)):
        if n >= scale:
            return f'{n / scale:.1f} {unit}'
    return f'{int(n)} bytes'


def physical_memory_bytes() -> Optional[int]:
    """Total physical memory of this machine, None where the OS does not say."""
    try:
        return int(os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE'))
    except (ValueError, OSError, AttributeError):
        return None


def default_decode_limit() -> Optional[int]:
    """:data:`DEFAULT_DECODE_FRACTION` of physical memory (None: no limit is known)."""
    total = physical_memory_bytes()
    return None if total is None else int(total * DEFAULT_DECODE_FRACTION)


def estimate_decode_bytes(planned_frames: int, container_frames: int, width: int,
                          height: int) -> int:
    """Bytes a loader holds at its peak for one video: the distinct frames decoded (at most
    the container's frame count) plus the ``(T, K, H, W, 3)`` array built from them, uint8
    RGB at the container's frame size."""
    frame = int(width) * int(height) * 3
    distinct = min(int(planned_frames), int(container_frames) or int(planned_frames))
    return (distinct + int(planned_frames)) * frame


def check_decode_memory(path: str, planned_frames: int, probe: Optional[Dict],
                        limit: Optional[float], ident: str = '', knob: str = 'max_clips',
                        loader: str = 'LoadVideoClips') -> Optional[int]:
    """Refuse, before decoding, a video whose decode would hold more than ``limit`` bytes.

    Args:
        path: the video file.
        planned_frames: frames the loader's plan samples (clips x frames per clip).
        probe: :func:`probe_video`'s result (None: nothing is known; no check).
        limit: bytes allowed; None or inf disables the check.
        ident: ``' (qid=..., vid=...)'`` of the item.
        knob: the loader argument that bounds ``planned_frames``.
        loader: the loader's type name (named in the message).

    Returns:
        int or None: the estimate in bytes (None when it could not be made).

    Raises:
        VideoMemoryError: the estimate is over ``limit``; names the file, both figures and
            ``knob``.
    """
    if probe is None or not probe['width'] or not probe['height']:
        return None
    need = estimate_decode_bytes(planned_frames, probe['frames'], probe['width'],
                                 probe['height'])
    if limit is not None and math.isfinite(limit) and need > limit:
        raise VideoMemoryError(
            f'video {path}{ident} would need about {_size(need)} ({need:,} bytes) to decode '
            f'{planned_frames:,} frames of {probe["width"]}x{probe["height"]}, over the limit '
            f'of {_size(limit)} ({int(limit):,} bytes: the loader\'s max_decode_bytes, '
            f'default {DEFAULT_DECODE_FRACTION:g} of physical memory). Set {knob} of the '
            f'pipeline\'s {loader} to sample fewer frames (a config with a top-level {knob} '
            f'variable, e.g. configs/demo/read_demo.py, takes --cfg-options {knob}=256), '
            'or raise max_decode_bytes.')
    return need
