"""LoadVideoFrames / LoadFramesFromFolder: T frames spread over a whole video.

Test videos are tiny mp4v files whose frame ``i`` is a uniform image of brightness
``STEP * i``, so decoded pixels reveal which frame was sampled (mp4v error < 5 levels).
"""
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from mmvpeft.datasets.transforms import (FormatVideo, PackRetrievalInputs, VideoCenterCrop,
                                         VideoReadError, VideoResize)
from mmvpeft.datasets.transforms.frame_sampling import (LoadFramesFromFolder, LoadVideoFrames,
                                                        sample_segment_frame_inds)
from mmvpeft.registry import TRANSFORMS

STEP = 12
W, H = 64, 48


def write_index_video(path, num_frames, fps=4):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, (W, H))
    assert writer.isOpened()
    for i in range(num_frames):
        writer.write(np.full((H, W, 3), STEP * i, np.uint8))
    writer.release()
    return str(path)


def decoded(imgs):
    """Frame index shown in each frame of ``(T, 1, H, W, 3)`` (or ``(T, 3, H, W)``)."""
    x = np.asarray(imgs).reshape(len(imgs), -1).astype(np.float64)
    return np.rint(x.mean(1) / STEP).astype(np.int64)


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp('frame_sampling')
    return dict(long=write_index_video(root / 'long.mp4', 16),
                short=write_index_video(root / 'short.mp4', 3), root=root)


def test_uniform_indices_are_segment_centres():
    np.testing.assert_array_equal(sample_segment_frame_inds(16, 8), 2 * np.arange(8) + 1)
    np.testing.assert_array_equal(sample_segment_frame_inds(10, 4), [1, 3, 6, 8])
    # Shorter than T: frames repeat, in order.
    np.testing.assert_array_equal(sample_segment_frame_inds(3, 8), [0, 0, 0, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(sample_segment_frame_inds(3, 8, short_video='keep'),
                                  [0, 1, 2])
    np.testing.assert_array_equal(sample_segment_frame_inds(1, 4), [0, 0, 0, 0])


def test_random_indices_one_per_segment_and_cover_it():
    rng = np.random.default_rng(0)
    draws = np.stack([sample_segment_frame_inds(32, 8, 'random', rng=rng) for _ in range(300)])
    seg = np.arange(8) * 4
    assert ((draws >= seg) & (draws < seg + 4)).all()
    # Every frame of every segment is drawn sometimes: it is not a fixed offset.
    for k in range(8):
        assert set(draws[:, k].tolist()) == set(range(4 * k, 4 * k + 4))
    # Short videos stay in range and ordered.
    short = np.stack([sample_segment_frame_inds(3, 8, 'random', rng=rng) for _ in range(100)])
    assert short.min() == 0 and short.max() == 2 and (np.diff(short, axis=1) >= 0).all()


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
    assert packed['inputs']['imgs'].shape == (8, 3, 32, 32)
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
