"""Tests for the processing transforms: frame-index samplers, resize, crop, FormatVideo."""
import cv2
import numpy as np
import pytest
import torch

from mmvpeft.datasets.transforms.processing import (FormatVideo, VideoCenterCrop, VideoResize,
                                                    sample_clip_frame_inds,
                                                    sample_segment_frame_inds,
                                                    uniform_subsample)

W, H = 64, 48


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


def test_format_video_keeps_the_k_axis_and_rejects_other_ranks():
    # (T, K, H, W, 3) -> (T, K, 3, H, W): K = 1 stays an axis (the data contract).
    frames = np.zeros((4, 1, 8, 8, 3), np.uint8)
    assert FormatVideo()(dict(imgs=frames))['imgs'].shape == (4, 1, 3, 8, 8)
    with pytest.raises(ValueError, match=r'\(T, K, H, W, 3\).*vid=v1'):
        FormatVideo()(dict(imgs=frames[:, 0], vid='v1'))


def test_uniform_subsample():
    np.testing.assert_array_equal(uniform_subsample(5, None), np.arange(5))
    np.testing.assert_array_equal(uniform_subsample(5, 8), np.arange(5))
    # Centres of 4 equal segments of 10 rows: 1.25, 3.75, 6.25, 8.75.
    np.testing.assert_array_equal(uniform_subsample(10, 4), [1, 3, 6, 8])
