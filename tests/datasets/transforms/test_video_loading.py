"""Tests for the raw-video loading transforms.

The videos are tiny mp4v files whose frame ``i`` is a uniform image of
brightness ``STEP * i``, so the decoded pixels reveal which frame was sampled
(mp4v is lossy: measured error is under 5 levels, half of STEP is 6).
"""
import os
import os.path as osp
import struct
import subprocess
import sys
import threading
import warnings

import cv2
import numpy as np
import pytest
import torch

from mmvpeft.datasets.transforms.video_loading import (FormatVideo, LoadFrameFolder,
                                                       LoadVideoClips, VideoCenterCrop,
                                                       VideoReadError, VideoResize,
                                                       sample_clip_frame_inds)
from mmvpeft.registry import TRANSFORMS

STEP = 12
W, H = 64, 48
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def write_index_video(path, num_frames, fps=4, size=(W, H)):
    """mp4v video whose frame ``i`` has brightness ``STEP * i`` (at most 21 frames)."""
    assert STEP * (num_frames - 1) <= 255
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, size)
    assert writer.isOpened()
    for i in range(num_frames):
        writer.write(np.full((size[1], size[0], 3), STEP * i, np.uint8))
    writer.release()
    return str(path)


def decoded_inds(imgs):
    """Frame index encoded in each frame: ``(N, F, H, W, 3)`` -> ``(N, F)``."""
    means = imgs.reshape(imgs.shape[:2] + (-1, )).astype(np.float64).mean(-1)
    return np.rint(means / STEP).astype(np.int64)


def run_with_timeout(fn, timeout=60):
    """Call ``fn`` in a daemon thread; fail instead of hanging the suite."""
    box = {}

    def target():
        try:
            box['value'] = fn()
        except BaseException as e:  # noqa: B902 - re-raised in the caller
            box['error'] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f'call did not return within {timeout}s'
    if 'error' in box:
        raise box['error']
    return box['value']


def mp4_atoms(data):
    """Top-level mp4 atoms: ``{kind: bytes}`` in file order."""
    atoms, off = {}, 0
    while off < len(data):
        size, kind = struct.unpack('>I4s', data[off:off + 8])
        atoms[kind] = data[off:off + size]
        off += size
    return atoms


def to_faststart(data):
    """Move the ``moov`` atom before ``mdat`` (as web videos are), fixing offsets.

    cv2 writes ``moov`` last, so cutting its file removes the index; a faststart
    file keeps the index when its media data is cut.
    """
    atoms = mp4_atoms(data)
    moov = bytearray(atoms[b'moov'])
    pos = moov.find(b'stco')
    count = struct.unpack('>I', moov[pos + 8:pos + 12])[0]
    for k in range(count):
        o = pos + 12 + 4 * k
        moov[o:o + 4] = struct.pack('>I', struct.unpack('>I', moov[o:o + 4])[0] + len(moov))
    return b''.join(v for k, v in atoms.items() if k not in (b'moov', b'mdat')) + \
        bytes(moov) + atoms[b'mdat']


@pytest.fixture
def video20(tmp_path):
    """20 frames at 4 fps: 5 s."""
    return write_index_video(tmp_path / 'v20.mp4', 20)


# ----------------------------------------------------------------- sampling


def test_sample_clip_frame_inds_centres():
    # 5 s at 4 fps, 2 s clips, 2 frames per clip: centres 0.5, 1.5 | 2.5, 3.5 |
    # 4.5, 5.5 s -> frames 2, 6 | 10, 14 | 18, 22 clamped to 19.
    inds, clip_len_eff = sample_clip_frame_inds(20, 4.0, None, 2.0, 2)
    assert inds.dtype == np.int64
    np.testing.assert_array_equal(inds, [[2, 6], [10, 14], [18, 19]])
    assert clip_len_eff == 2.0
    # Off-grid centres take the frame on screen at that time (floor), not the
    # nearest frame start: 0.25 s * 5 fps = 1.25 -> 1, 0.75 s -> 3.75 -> 3.
    inds, _ = sample_clip_frame_inds(10, 5.0, None, 1.0, 2)
    np.testing.assert_array_equal(inds, [[1, 3], [6, 8]])


@pytest.mark.parametrize('duration,clip_len,max_clips', [
    (5.0, 1.0, 2), (130.0, 2.0, 64), (17.3, 2.0, 4), (9.0, 0.5, 7), (16.0, 2.0, 8),
    (16.0, 2.0, 100)])
def test_sample_clip_frame_inds_time_axis(duration, clip_len, max_clips):
    fps, frames_per_clip = 8.0, 3
    num_frames = int(duration * fps)
    inds, clip_len_eff = sample_clip_frame_inds(num_frames, fps, duration, clip_len,
                                                frames_per_clip, max_clips)
    num_clips = inds.shape[0]
    full = int(np.ceil(duration / clip_len - 1e-6))
    assert num_clips == min(full, max_clips)
    if full <= max_clips:
        assert clip_len_eff == clip_len
    else:
        assert clip_len_eff == pytest.approx(duration / max_clips)
    # The clips cover the duration, and every frame sampled for clip i is shown
    # inside [i * clip_len_eff, (i + 1) * clip_len_eff) (unless clamped at the end).
    assert num_clips * clip_len_eff >= duration - 1e-6
    starts = inds / fps
    for i in range(num_clips):
        unclamped = inds[i] < num_frames - 1
        assert np.all(starts[i][unclamped] >= i * clip_len_eff - 1e-6)
        assert np.all(starts[i][unclamped] < (i + 1) * clip_len_eff)
    assert np.all(np.diff(inds.ravel()) >= 0)


# --------------------------------------------------------------- video file


def test_load_video_clips_samples_clip_centres(video20):
    results = LoadVideoClips(clip_len=2.0, frames_per_clip=2)(
        dict(video_path=video20))
    imgs = results['imgs']
    assert isinstance(imgs, np.ndarray) and imgs.dtype == np.uint8
    assert imgs.shape == (3, 2, H, W, 3)
    expected = [[2, 6], [10, 14], [18, 19]]
    np.testing.assert_array_equal(results['frame_inds'], expected)
    np.testing.assert_array_equal(decoded_inds(imgs), expected)
    assert results['num_clips'] == 3
    assert results['clip_len_eff'] == 2.0
    assert results['video_fps'] == pytest.approx(4.0)
    assert results['video_num_frames'] == 20
    assert results['video_duration'] == pytest.approx(5.0)
    assert results['img_shape'] == (H, W)


def test_load_video_clips_rgb_order(tmp_path):
    path = str(tmp_path / 'red.mp4')
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), 4, (W, H))
    for _ in range(4):
        writer.write(np.full((H, W, 3), (0, 0, 255), np.uint8))  # BGR red
    writer.release()
    imgs = LoadVideoClips(clip_len=1.0)(dict(video_path=path))['imgs']
    r, g, b = imgs[..., 0].mean(), imgs[..., 1].mean(), imgs[..., 2].mean()
    assert r > 200 and g < 60 and b < 60


def test_load_video_clips_uses_annotation_duration(video20):
    # The annotation says 4 s: two clips; the last second of video is unused.
    results = LoadVideoClips(clip_len=2.0)(dict(video_path=video20, duration=4.0))
    assert results['imgs'].shape[:2] == (2, 1)
    np.testing.assert_array_equal(decoded_inds(results['imgs']), [[4], [12]])


def test_load_video_clips_max_clips_keeps_time_axis(video20):
    # 1 s clips -> 5 clips; max_clips=2 resamples to 2 clips of 2.5 s whose
    # centres 1.25 s and 3.75 s are frames 5 and 15.
    results = LoadVideoClips(clip_len=1.0, max_clips=2)(dict(video_path=video20))
    assert results['num_clips'] == 2
    assert results['clip_len_eff'] == pytest.approx(2.5)
    got = decoded_inds(results['imgs'])
    np.testing.assert_array_equal(got, [[5], [15]])
    # clip index * clip_len_eff = seconds: each frame lies in its clip's span.
    for i, ind in enumerate(got[:, 0]):
        assert i * results['clip_len_eff'] <= ind / 4.0 < (i + 1) * results['clip_len_eff']
    # Not exceeded: no resampling.
    results = LoadVideoClips(clip_len=1.0, max_clips=5)(dict(video_path=video20))
    assert results['num_clips'] == 5 and results['clip_len_eff'] == 1.0


def test_load_video_clips_short_video_pads_with_last_frame(tmp_path):
    path = write_index_video(tmp_path / 'short.mp4', 8)  # 2 s
    with pytest.warns(UserWarning, match='short.mp4'):
        results = LoadVideoClips(clip_len=2.0)(
            dict(video_path=path, duration=6.0, vid='v_short'))
    assert results['num_clips'] == 3
    np.testing.assert_array_equal(decoded_inds(results['imgs']), [[4], [7], [7]])
    # Less than one clip short is ordinary rounding: padded without a warning.
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        results = LoadVideoClips(clip_len=2.0)(dict(video_path=path, duration=3.0))
    np.testing.assert_array_equal(decoded_inds(results['imgs']), [[4], [7]])


def test_load_video_clips_missing_file_names_path(tmp_path):
    path = str(tmp_path / 'nope.mp4')
    with pytest.raises(FileNotFoundError) as exc:
        LoadVideoClips()(dict(video_path=path, qid=7, vid='abc'))
    msg = str(exc.value)
    assert path in msg and 'qid=7' in msg and 'vid=abc' in msg


@pytest.mark.parametrize(
    'kind',
    ['garbage', 'empty', 'zero_frames', 'truncated', 'truncated_faststart', 'corrupt_payload'])
def test_load_video_clips_unreadable_raises_video_read_error(tmp_path, video20, kind):
    with open(video20, 'rb') as f:
        data = f.read()
    if kind == 'garbage':
        bad = np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes()
    elif kind == 'empty':
        bad = b''
    elif kind == 'zero_frames':
        # A well-formed mp4 from a writer that never got a frame.
        empty_path = str(tmp_path / 'writer_no_frames.mp4')
        cv2.VideoWriter(empty_path, cv2.VideoWriter_fourcc(*'mp4v'), 4, (W, H)).release()
        with open(empty_path, 'rb') as f:
            bad = f.read()
        assert len(bad) > 0
    elif kind == 'truncated':
        bad = data[:len(data) // 2]
    elif kind == 'corrupt_payload':
        # Intact container and index, zeroed frame data: opens, fails to decode.
        mdat = data.index(mp4_atoms(data)[b'mdat'])
        cut = mdat + len(mp4_atoms(data)[b'mdat']) // 3
        end = mdat + len(mp4_atoms(data)[b'mdat'])
        bad = data[:cut] + bytes(end - cut) + data[end:]
    else:
        fast = to_faststart(data)
        # Sanity: the rewritten file is valid before it is cut.
        ok_path = str(tmp_path / 'fast_ok.mp4')
        with open(ok_path, 'wb') as f:
            f.write(fast)
        ok = LoadVideoClips(clip_len=1.0)(dict(video_path=ok_path))
        np.testing.assert_array_equal(decoded_inds(ok['imgs'])[:, 0], [2, 6, 10, 14, 18])
        bad = fast[:int(len(fast) * 0.7)]
    path = str(tmp_path / f'{kind}.mp4')
    with open(path, 'wb') as f:
        f.write(bad)
    with pytest.raises(VideoReadError) as exc:
        run_with_timeout(lambda: LoadVideoClips()(dict(video_path=path, vid='bad')))
    assert path in str(exc.value) and 'vid=bad' in str(exc.value)
    assert isinstance(exc.value, RuntimeError)


@pytest.mark.parametrize('num_frames,fps', [(0, 4.0), (10, 0.0), (10, float('nan'))])
def test_load_video_clips_rejects_empty_or_fpsless_reader(monkeypatch, video20, num_frames,
                                                          fps):
    # decord 0.6 already refuses frameless files at open; a reader that opens but
    # reports no frames or no fps must not reach the sampler either.
    import decord

    class FakeReader:

        def __init__(self, *args, **kwargs):
            pass

        def __len__(self):
            return num_frames

        def get_avg_fps(self):
            return fps

    monkeypatch.setattr(decord, 'VideoReader', FakeReader)
    with pytest.raises(VideoReadError, match='v20.mp4'):
        LoadVideoClips()(dict(video_path=video20))


# ------------------------------------------------------------- frame folder


def _extract_frames(video_path, frame_dir, ext):
    import decord
    vr = decord.VideoReader(video_path)
    frames = vr.get_batch(list(range(len(vr)))).asnumpy()
    os.makedirs(frame_dir)
    for i, frame in enumerate(frames):
        cv2.imwrite(osp.join(frame_dir, f'img_{i + 1:05d}.{ext}'), frame[..., ::-1])
    return frames


@pytest.mark.parametrize('max_clips', [None, 2])
def test_frame_folder_equals_video_loading(tmp_path, video20, max_clips):
    frame_dir = str(tmp_path / 'frames' / 'v20')
    # BMP: lossless for an exact comparison, and (unlike PNG) needs no zlib, so
    # it does not depend on whether decord was imported before cv2.
    _extract_frames(video20, frame_dir, 'bmp')
    common = dict(clip_len=1.0, frames_per_clip=2, max_clips=max_clips)
    from_video = LoadVideoClips(**common)(dict(video_path=video20, duration=4.5))
    from_frames = LoadFrameFolder(fps=4, filename_tmpl='img_{:05d}.bmp', **common)(
        dict(frame_dir=frame_dir, duration=4.5))
    assert from_frames['imgs'].dtype == np.uint8
    assert from_frames['imgs'].flags['C_CONTIGUOUS']
    np.testing.assert_array_equal(from_frames['imgs'], from_video['imgs'])
    for key in ('frame_inds', 'num_clips', 'clip_len_eff', 'video_fps',
                'video_num_frames', 'video_duration', 'img_shape'):
        np.testing.assert_array_equal(from_frames[key], from_video[key], err_msg=key)


def test_frame_folder_jpg_and_fps_from_results(tmp_path, video20):
    frame_dir = str(tmp_path / 'v20')
    _extract_frames(video20, frame_dir, 'jpg')
    results = LoadFrameFolder(clip_len=2.0)(dict(frame_dir=frame_dir, fps=4.0))
    assert results['imgs'].shape == (3, 1, H, W, 3)
    np.testing.assert_array_equal(decoded_inds(results['imgs']), [[4], [12], [19]])
    assert results['video_num_frames'] == 20


def test_frame_folder_errors_name_the_path(tmp_path, video20):
    loader = LoadFrameFolder(fps=4)
    missing = str(tmp_path / 'absent')
    with pytest.raises(FileNotFoundError, match='absent'):
        loader(dict(frame_dir=missing))

    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as exc:
        loader(dict(frame_dir=str(empty), vid='e'))
    assert str(empty) in str(exc.value) and 'vid=e' in str(exc.value)

    frame_dir = str(tmp_path / 'frames')
    _extract_frames(video20, frame_dir, 'jpg')
    gone = osp.join(frame_dir, 'img_00005.jpg')  # frame 4: centre of clip 0
    os.remove(gone)
    with pytest.raises(FileNotFoundError) as exc:
        loader(dict(frame_dir=frame_dir, total_frames=20))
    assert gone in str(exc.value)

    with open(gone, 'wb') as f:
        f.write(b'not a jpeg')
    with pytest.raises(VideoReadError) as exc:
        loader(dict(frame_dir=frame_dir))
    assert gone in str(exc.value)


def test_frame_folder_png_after_decord_import_is_explained(tmp_path, video20):
    # decord 0.6 exports its old zlib globally; imported before cv2 it breaks
    # cv2's PNG reading. Whatever this build does, a PNG folder must either load
    # correctly or fail with an error that names the file and the cause.
    frame_dir = str(tmp_path / 'png')
    frames = _extract_frames(video20, frame_dir, 'png')
    np.save(str(tmp_path / 'expected.npy'), frames[[4, 12, 19]])
    script = (
        'import decord, sys, numpy as np\n'
        'from mmvpeft.datasets.transforms.video_loading import LoadFrameFolder, '
        'VideoReadError\n'
        'loader = LoadFrameFolder(fps=4, filename_tmpl="img_{:05d}.png")\n'
        'try:\n'
        f'    imgs = loader(dict(frame_dir={frame_dir!r}))["imgs"]\n'
        'except VideoReadError as e:\n'
        '    print("ERROR", e); sys.exit(0)\n'
        f'expected = np.load({str(tmp_path / "expected.npy")!r})\n'
        'print("LOADED", bool((imgs[:, 0] == expected).all()))\n')
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          timeout=120, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.strip().splitlines()[-1]
    if out.startswith('ERROR'):
        assert 'img_00005.png' in out and 'import cv2 first' in out, out
    else:
        assert out == 'LOADED True', out


# -------------------------------------------------------- resize/crop/format


def _coord_imgs(n=2, f=3, h=H, w=W):
    """uint8 ``(n, f, h, w, 3)``: channel 0 = x, channel 1 = y, channel 2 = frame."""
    imgs = np.zeros((n, f, h, w, 3), np.uint8)
    imgs[..., 0] = np.arange(w)[None, None, None, :]
    imgs[..., 1] = np.arange(h)[None, None, :, None]
    imgs[..., 2] = (np.arange(n * f) * 10).reshape(n, f, 1, 1)
    return imgs


@pytest.mark.parametrize('shape,short,expected', [
    ((H, W), 32, (32, 43)), ((W, H), 32, (43, 32)), ((H, W), 96, (96, 128)),
    ((32, 32), 32, (32, 32))])
def test_video_resize_short_side(shape, short, expected):
    imgs = _coord_imgs(h=shape[0], w=shape[1])
    results = VideoResize(short_side=short)(dict(imgs=imgs))
    out = results['imgs']
    assert out.shape == (2, 3) + expected + (3, ) and out.dtype == np.uint8
    assert results['img_shape'] == expected
    # Frames are resized independently and stay in order.
    flag = cv2.INTER_AREA if short < min(shape) else cv2.INTER_LINEAR
    ref = cv2.resize(imgs[1, 2], expected[::-1], interpolation=flag)
    np.testing.assert_array_equal(out[1, 2], ref)
    np.testing.assert_array_equal(out[..., 2].mean((2, 3)), imgs[..., 2].mean((2, 3)))


def test_video_center_crop():
    imgs = _coord_imgs()
    results = VideoCenterCrop(size=32)(dict(imgs=imgs))
    out = results['imgs']
    assert out.shape == (2, 3, 32, 32, 3)
    # x starts at (64 - 32) / 2 = 16, y at (48 - 32) / 2 = 8.
    assert results['crop_bbox'] == (16, 8, 48, 40)
    np.testing.assert_array_equal(out[0, 0, 0, :, 0], np.arange(16, 48))
    np.testing.assert_array_equal(out[0, 0, :, 0, 1], np.arange(8, 40))
    assert VideoCenterCrop(size=(20, 30))(dict(imgs=imgs))['imgs'].shape[2:4] == (20, 30)
    with pytest.raises(ValueError, match='resize first'):
        VideoCenterCrop(size=64)(dict(imgs=imgs))


def test_format_video():
    imgs = _coord_imgs()
    cropped = VideoCenterCrop(size=32)(dict(imgs=imgs))['imgs']
    assert not cropped.flags['C_CONTIGUOUS']
    out = FormatVideo()(dict(imgs=cropped))['imgs']
    assert isinstance(out, torch.Tensor) and out.dtype == torch.uint8
    assert out.shape == (2, 3, 3, 32, 32) and out.is_contiguous()
    np.testing.assert_array_equal(out.numpy(), cropped.transpose(0, 1, 4, 2, 3))
    with pytest.raises(ValueError):
        FormatVideo()(dict(imgs=imgs.astype(np.float32)))


def test_video_pipeline_from_registry(video20):
    cfgs = [dict(type='LoadVideoClips', clip_len=2.0, frames_per_clip=2),
            dict(type='VideoResize', short_side=32),
            dict(type='VideoCenterCrop', size=32),
            dict(type='FormatVideo')]
    results = dict(video_path=video20)
    for cfg in cfgs:
        transform = TRANSFORMS.build(cfg)
        assert cfg['type'] in repr(transform)
        results = transform(results)
    assert results['imgs'].shape == (3, 2, 3, 32, 32)
    assert results['imgs'].dtype == torch.uint8
    got = np.rint(results['imgs'].double().mean((2, 3, 4)).numpy() / STEP)
    np.testing.assert_array_equal(got, [[2, 6], [10, 14], [18, 19]])
    assert 'max_clips=None' in repr(TRANSFORMS.build(cfgs[0]))
    assert "filename_tmpl='img_{:05d}.jpg'" in repr(LoadFrameFolder(fps=4))
