"""Tests for the loading transforms (video files and frame folders; features are tested
with the grounding dataset in tests/datasets/test_moment_dataset.py).

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

from mmvpeft.datasets.transforms.loading import (LoadFrameFolder, LoadFramesFromFolder,
                                                 LoadVideoClips, LoadVideoFrames, VideoReadError)
from mmvpeft.datasets.transforms.formatting import PackRetrievalInputs
from mmvpeft.datasets.transforms.processing import FormatVideo, VideoCenterCrop, VideoResize
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
        'from mmvpeft.datasets.transforms.loading import LoadFrameFolder, '
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


# ------------------------------------------ whole-video frame sampling (K = 1)


def decoded(imgs):
    """Frame index shown in each time step of ``(T, 1, H, W, 3)`` or ``(T, 1, 3, H, W)``."""
    x = np.asarray(imgs).reshape(len(imgs), -1).astype(np.float64)
    return np.rint(x.mean(1) / STEP).astype(np.int64)


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp('frame_sampling')
    return dict(long=write_index_video(root / 'long.mp4', 16),
                short=write_index_video(root / 'short.mp4', 3), root=root)


def test_load_video_frames_uniform_and_pipeline(videos):
    t = TRANSFORMS.build(dict(type='LoadVideoFrames', num_frames=8))
    assert isinstance(t, LoadVideoFrames)
    out = t(dict(video_path=videos['long'], vid='long'))
    assert out['imgs'].shape == (8, 1, H, W, 3) and out['imgs'].dtype == np.uint8
    np.testing.assert_array_equal(out['frame_inds'], 2 * np.arange(8) + 1)
    np.testing.assert_array_equal(decoded(out['imgs']), out['frame_inds'])
    assert out['video_num_frames'] == 16 and out['video_fps'] == pytest.approx(4)
    assert out['img_shape'] == (H, W)
    for step in (VideoResize(32), VideoCenterCrop(32), FormatVideo()):
        out = step(out)
    assert out['imgs'].shape == (8, 1, 3, 32, 32)
    out.update(captions=['a'], caption_ids=['long#0'], text_tokens=np.zeros((1, 3), np.int64),
               text_mask=np.ones((1, 3), bool))
    packed = PackRetrievalInputs()(out)
    # The contract keeps the K = 1 axis from the loader to the model.
    assert packed['inputs']['imgs'].shape == (8, 1, 3, 32, 32)
    assert packed['inputs']['imgs'].dtype == torch.uint8
    np.testing.assert_array_equal(decoded(packed['inputs']['imgs'].numpy()), 2 * np.arange(8) + 1)


def test_random_sampling_decodes_the_sampled_frames(videos):
    np.random.seed(0)
    t = LoadVideoFrames(num_frames=4, sampling='random')
    seen = set()
    for _ in range(6):
        out = t(dict(video_path=videos['long']))
        inds = out['frame_inds']
        assert ((inds >= np.arange(4) * 4) & (inds < np.arange(4) * 4 + 4)).all()
        np.testing.assert_array_equal(decoded(out['imgs']), inds)
        seen.add(tuple(inds.tolist()))
    assert len(seen) > 1


def test_short_video_repeat_or_keep(videos):
    out = LoadVideoFrames(num_frames=8)(dict(video_path=videos['short']))
    np.testing.assert_array_equal(decoded(out['imgs']), [0, 0, 0, 1, 1, 2, 2, 2])
    out = LoadVideoFrames(num_frames=8, short_video='keep')(dict(video_path=videos['short']))
    assert out['imgs'].shape[0] == 3
    np.testing.assert_array_equal(decoded(out['imgs']), [0, 1, 2])


def test_max_duration(videos):
    # 16 frames at 4 fps; the first 2 s are frames 0..7.
    out = LoadVideoFrames(num_frames=4, max_duration=2)(dict(video_path=videos['long']))
    np.testing.assert_array_equal(out['frame_inds'], [1, 3, 5, 7])
    np.testing.assert_array_equal(decoded(out['imgs']), [1, 3, 5, 7])


def test_missing_and_corrupt_files_are_named(videos):
    t = LoadVideoFrames()
    missing = str(videos['root'] / 'nope.mp4')
    with pytest.raises(FileNotFoundError, match='nope.mp4.*vid=v9'):
        t(dict(video_path=missing, vid='v9'))
    bad = videos['root'] / 'bad.mp4'
    bad.write_bytes(b'\x00\x01not a video' * 50)
    with pytest.raises(VideoReadError, match=r'bad\.mp4.*vid=v8'):
        t(dict(video_path=str(bad), vid='v8'))


def test_argument_checks_and_repr():
    with pytest.raises(ValueError, match='sampling'):
        LoadVideoFrames(sampling='dense')
    with pytest.raises(ValueError, match='num_frames'):
        LoadVideoFrames(num_frames=0)
    with pytest.raises(ValueError, match='short_video'):
        LoadVideoFrames(short_video='drop')
    assert 'num_frames=8' in repr(LoadVideoFrames()) and "sampling='uniform'" in repr(
        LoadVideoFrames())


def test_frame_folder_variant(tmp_path):
    frame_dir = tmp_path / 'v0'
    frame_dir.mkdir()
    for i in range(8):
        cv2.imwrite(str(frame_dir / f'img_{i + 1:05d}.jpg'), np.full((H, W, 3), STEP * i, np.uint8))
    t = TRANSFORMS.build(dict(type='LoadFramesFromFolder', num_frames=4))
    assert isinstance(t, LoadFramesFromFolder)
    results = dict(frame_dir=str(frame_dir), vid='v0')
    out = t(results)
    assert out['imgs'].shape == (4, 1, H, W, 3)
    np.testing.assert_array_equal(out['frame_inds'], [1, 3, 5, 7])
    np.testing.assert_array_equal(decoded(out['imgs']), [1, 3, 5, 7])
    # No fps was known: none is reported, and the stand-in is not left behind.
    assert 'fps' not in out and 'video_fps' not in out and '_nominal_fps' not in out
    with pytest.raises(ValueError, match='needs fps'):
        LoadFramesFromFolder(num_frames=4, max_duration=1)(dict(frame_dir=str(frame_dir)))
    out = LoadFramesFromFolder(num_frames=2, max_duration=1, fps=4)(dict(frame_dir=str(frame_dir)))
    np.testing.assert_array_equal(out['frame_inds'], [1, 3])
    assert out['video_fps'] == 4
    with pytest.raises(FileNotFoundError, match='missing_dir'):
        t(dict(frame_dir=osp.join(str(tmp_path), 'missing_dir')))
