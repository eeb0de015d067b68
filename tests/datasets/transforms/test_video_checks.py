"""Videos that lie (issue 17): real mp4s whose container timing is broken, frame rates no
video has, and videos too large to decode as configured."""
import math
import os.path as osp
import re
import struct
import warnings

import cv2
import numpy as np
import pytest

from mmvpeft.datasets.transforms import LoadVideoClips, LoadVideoFrames, VideoReadError
from mmvpeft.datasets.transforms import video_checks
from mmvpeft.datasets.transforms.video_checks import (VideoMemoryError, VideoTimingError,
                                                      check_frame_rate, probe_video)

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def write_mp4(path, num_frames=64, fps=4.0, size=(64, 64)):
    """An mp4v file of ``num_frames`` gray frames (cv2 writes one ``stts`` entry)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, size)
    for i in range(num_frames):
        writer.write(np.full((size[1], size[0], 3), (i * 4) % 256, np.uint8))
    writer.release()
    return str(path)


def scale_frame_times(path, factor):
    """Broken frame timing: every frame lasts ``factor`` times longer in the sample table
    (``stts``) while the track and movie headers keep the true duration."""
    data = bytearray(open(path, 'rb').read())
    pos = data.find(b'stts')
    for k in range(struct.unpack_from('>I', data, pos + 8)[0]):
        off = pos + 12 + 8 * k + 4
        struct.pack_into('>I', data, off, int(struct.unpack_from('>I', data, off)[0] * factor))
    with open(path, 'wb') as f:
        f.write(data)
    return path


def scale_track_timescale(path, factor):
    """The track's clock (``mdhd`` timescale) ticks ``factor`` times faster: fps x factor."""
    data = bytearray(open(path, 'rb').read())
    pos = data.find(b'mdhd')
    assert data[pos + 4] == 0  # version 0 header
    off = pos + 4 + 4 + 8
    struct.pack_into('>I', data, off, int(struct.unpack_from('>I', data, off)[0] * factor))
    with open(path, 'wb') as f:
        f.write(data)
    return path


@pytest.fixture(autouse=True)
def _fresh_warning_memory(monkeypatch):
    monkeypatch.setattr(video_checks, '_TIMING_WARNED', set())
    monkeypatch.setattr(video_checks, '_PROBES', {})


def test_container_with_broken_frame_timing_warns_once_with_the_three_lengths(tmp_path):
    path = scale_frame_times(write_mp4(tmp_path / 'lies.mp4'), 64)  # 16 s that read as 1024 s
    probe = probe_video(path)
    assert probe['frames'] == 64 and probe['duration'] == pytest.approx(1024.0)
    load = LoadVideoClips(clip_len=1.0)
    with pytest.warns(UserWarning) as rec:
        load(dict(video_path=path, duration=16.0, vid='lies'))
    msgs = [str(r.message) for r in rec if 'disagree' in str(r.message)]
    assert len(msgs) == 1
    assert path in msgs[0] and 'vid=lies' in msgs[0]
    assert re.search(r'decoded 16\.00 s, container 1024\.00 s, annotation 16\.00 s', msgs[0])
    with warnings.catch_warnings():  # once per file
        warnings.simplefilter('error')
        load(dict(video_path=path, duration=16.0, vid='lies'))


def test_honest_video_and_rounding_within_a_clip_are_quiet(tmp_path):
    path = write_mp4(tmp_path / 'ok.mp4')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        out = LoadVideoClips(clip_len=1.0)(dict(video_path=path, duration=16.5))
        LoadVideoFrames(num_frames=4)(dict(video_path=path))
    assert out['imgs'].shape[0] == 17


def test_absurd_frame_rate_from_a_real_file_is_an_error_naming_it(tmp_path):
    path = scale_track_timescale(write_mp4(tmp_path / 'fast.mp4'), 1000)  # 4000 fps
    with pytest.raises(VideoTimingError, match=re.escape(path) + r'.*4000(\.0)? fps'):
        LoadVideoClips()(dict(video_path=path, duration=16.0))
    assert issubclass(VideoTimingError, VideoReadError)  # skip_corrupt may skip it


@pytest.mark.parametrize('fps', [0.0, -25.0, float('nan'), float('inf'), 1000.5])
def test_zero_negative_nan_or_absurd_fps_is_refused(fps):
    with pytest.raises(VideoTimingError, match=r'v\.mp4 \(vid=a\).*no video has'):
        check_frame_rate(fps, 'v.mp4', ' (vid=a)')
    check_frame_rate(29.97, 'v.mp4')
    check_frame_rate(1000.0, 'v.mp4')


def test_three_hour_video_is_refused_before_decoding_naming_max_clips(tmp_path, monkeypatch):
    # 8 HD frames whose annotation says 3 hours: 1 s clips (read_demo) plan 10,800 frames.
    path = write_mp4(tmp_path / 'long.mp4', num_frames=8, fps=4.0, size=(1280, 720))
    monkeypatch.setattr(video_checks, 'physical_memory_bytes', lambda: 16 * 2**30)
    decoded = []
    import decord
    monkeypatch.setattr(decord, 'VideoReader', lambda *a, **k: decoded.append(a) or 1 / 0)
    item = dict(video_path=path, duration=3 * 3600.0, vid='long')
    with pytest.raises(VideoMemoryError) as exc:
        LoadVideoClips(clip_len=1.0)(dict(item))
    msg = str(exc.value)
    need = (8 + 10800) * 1280 * 720 * 3
    assert path in msg and f'{need:,} bytes' in msg and 'max_clips' in msg
    assert f'{4 * 2**30:,} bytes' in msg  # a quarter of the (patched) physical memory
    assert not decoded  # refused before the decoder opened the file
    monkeypatch.undo()
    with pytest.warns(UserWarning, match=r'decoded 2\.00 s.*annotation 10800\.00 s'):
        out = LoadVideoClips(clip_len=1.0, max_clips=32)(dict(item))  # the knob lets it in
    assert out['imgs'].shape[:2] == (32, 1)
    with pytest.raises(VideoMemoryError, match='over the limit of 1.0 MiB'):
        LoadVideoClips(max_decode_bytes=2**20)(dict(video_path=path, duration=8.0))
    with pytest.raises(ValueError, match='max_decode_bytes'):
        LoadVideoClips(max_decode_bytes=0)


def test_inference_tools_check_the_video_too(tmp_path, monkeypatch):
    from mmvpeft.apis import init_grounder
    grounder = init_grounder(osp.join(REPO_ROOT, 'configs', 'demo', 'read_demo.py'), None,
                             'cpu')
    lies = scale_frame_times(write_mp4(tmp_path / 'lies.mp4'), 64)
    with pytest.warns(UserWarning, match=re.escape(lies) + r'.*decoded 16\.00 s, container '
                      r'1024\.00 s, annotation unknown'):
        grounder.predict(lies, 'a red circle moves to the right')
    # A container that claims 3 hours (8 HD frames, 1350 s each) is refused before decoding.
    long = scale_frame_times(write_mp4(tmp_path / 'long.mp4', num_frames=8, size=(1280, 720)),
                             5400)
    assert math.isclose(probe_video(long)['duration'], 10800.0, rel_tol=1e-6)
    monkeypatch.setattr(video_checks, 'physical_memory_bytes', lambda: 16 * 2**30)
    with pytest.raises(VideoMemoryError, match=re.escape(long) + '.*max_clips'):
        grounder.predict(long, 'a red circle moves to the right')
