"""ClipStream (window-by-window decoding) and clip features at another rate."""
import os.path as osp

import numpy as np
import pytest

from mmvpeft.datasets.synthetic.long_videos import write_long_shape_video
from mmvpeft.datasets.transforms.loading import LoadClipFeatures, LoadVideoClips
from mmvpeft.datasets.transforms.video_stream import (ClipStream, match_feature_rate,
                                                      resample_rows)


@pytest.fixture(scope='module')
def long_video(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('long') / 'long.mp4')
    info = write_long_shape_video(path, 30.0, (25, 28), fps=4, seed=3)
    return path, info


def test_windows_decode_the_frames_the_whole_video_loader_decodes(long_video):
    path, info = long_video
    whole = LoadVideoClips(clip_len=1.0, frames_per_clip=2)(dict(video_path=path))
    stream = ClipStream(path, clip_len=1.0, frames_per_clip=2)
    assert stream.num_clips == whole['num_clips'] == 30
    spans = [(0, 8), (4, 12), (8, 16), (12, 20), (16, 24), (22, 30)]
    for (s, e), nxt in zip(spans, [b for b, _ in spans[1:]] + [None]):
        win = stream.window(s, e, keep_from=nxt)
        assert np.array_equal(win['imgs'], whole['imgs'][s:e])
        assert np.array_equal(win['frame_inds'], whole['frame_inds'][s:e])
        assert win['num_clips'] == e - s and win['clip_len_eff'] == 1.0
        # only the frames the next window shares stay decoded
        keep = set() if nxt is None else set(whole['frame_inds'][nxt:e].ravel().tolist())
        assert set(stream._cache) == keep
    assert whole['video_duration'] == pytest.approx(info['duration'])


def test_stream_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothere.mp4'):
        ClipStream(str(tmp_path / 'nothere.mp4'))


def test_resample_rows_keeps_means_and_constants():
    rng = np.random.default_rng(0)
    feat = rng.normal(size=(12, 3)).astype(np.float32)
    down = resample_rows(feat, 6)
    assert np.allclose(down, feat.reshape(6, 2, 3).mean(1), atol=1e-6)
    up = resample_rows(feat, 24)
    assert np.allclose(up[0::2], feat, atol=1e-6) and np.allclose(up[1::2], feat, atol=1e-6)
    odd = resample_rows(feat, 5)
    assert np.allclose(odd.mean(0), feat.mean(0), atol=1e-5)
    assert np.allclose(resample_rows(np.ones((7, 2), np.float32), 3), 1.0)


def test_features_at_another_rate_are_resampled_with_a_warning_or_refused():
    feat = np.arange(40, dtype=np.float32).reshape(20, 2)  # 1 s rows of a 20 s video
    same, changed = match_feature_rate(feat, 20.0, 1.0)
    assert not changed and same is feat
    with pytest.warns(UserWarning, match='one row per 1 s.*clip_len is 2 s'):
        out, changed = match_feature_rate(feat, 20.0, 2.0, source='v.npz')
    assert changed and out.shape == (10, 2)
    assert np.allclose(out[:, 0], feat[0::2, 0] + 1)
    with pytest.raises(ValueError, match=r"v.npz.*feature_rate='resample'.*clip_len=1"):
        match_feature_rate(feat, 20.0, 2.0, 'error', source='v.npz')
    # a stated rate wins over the duration
    with pytest.warns(UserWarning):
        out, _ = match_feature_rate(feat, None, 2.0, feat_clip_len=1.0)
    assert out.shape == (10, 2)


def test_clip_feature_loader_applies_the_rate_policy(tmp_path):
    (tmp_path / 'f').mkdir()
    np.savez(tmp_path / 'f' / 'v0.npz', features=np.ones((30, 4), np.float32))
    item = dict(vid='v0', qid=1, duration=60.0, data_root=str(tmp_path))
    old = LoadClipFeatures(str(tmp_path / 'f'), clip_len=1.0)(dict(item))
    assert old['num_clips'] == 30  # no policy: rows are taken as they are, as before
    with pytest.warns(UserWarning, match='resampled to 60 rows'):
        new = LoadClipFeatures(str(tmp_path / 'f'), clip_len=1.0, feature_rate='resample')(
            dict(item))
    assert new['num_clips'] == 60 and new['clip_len_eff'] == 1.0
    with pytest.raises(ValueError, match='v0.npz.*feature_rate'):
        LoadClipFeatures(str(tmp_path / 'f'), clip_len=1.0, feature_rate='error')(dict(item))
    with pytest.raises(ValueError, match='feature_rate must be'):
        LoadClipFeatures(str(tmp_path / 'f'), feature_rate='warn')


def test_stream_mode_loaders_plan_and_check_but_decode_nothing(long_video, tmp_path):
    """stream=True (set by the long-video test loop): the whole loader's keys but the
    frames, and a handle whose stream reads the same frames window by window."""
    import os

    import cv2

    from mmvpeft.datasets.transforms.loading import LoadFrameFolder
    from mmvpeft.datasets.transforms.video_stream import FrameFolderStream, open_stream
    path, _ = long_video
    whole = LoadVideoClips(clip_len=1.0, frames_per_clip=2)(dict(video_path=path, duration=29.5))
    lazy = LoadVideoClips(clip_len=1.0, frames_per_clip=2, stream=True)(
        dict(video_path=path, duration=29.5))
    assert 'imgs' not in lazy and lazy.keys() == whole.keys() - {'imgs', 'img_shape',
                                                                 'ori_shape'} | {'video_stream'}
    assert np.array_equal(lazy['frame_inds'], whole['frame_inds'])
    stream = open_stream(lazy['video_stream'])
    assert isinstance(stream, ClipStream) and stream.num_clips == whole['num_clips'] == 30
    assert np.array_equal(stream.window(10, 20)['imgs'], whole['imgs'][10:20])
    with pytest.raises(ValueError, match='max_clips'):
        LoadVideoClips(max_clips=8, stream=True)

    frame_dir = str(tmp_path / 'frames')  # the video's frames as lossless files
    os.makedirs(frame_dir)
    for i, frame in enumerate(ClipStream(path)._read(list(range(stream.num_frames)))):
        cv2.imwrite(osp.join(frame_dir, f'img_{i + 1:05d}.bmp'), frame[..., ::-1])
    loader = dict(clip_len=1.0, frames_per_clip=2, fps=4, filename_tmpl='img_{:05d}.bmp')
    whole = LoadFrameFolder(**loader)(dict(frame_dir=frame_dir))
    lazy = LoadFrameFolder(**loader, stream=True)(dict(frame_dir=frame_dir))
    assert 'imgs' not in lazy
    frames = open_stream(lazy['video_stream'])
    assert isinstance(frames, FrameFolderStream) and frames.num_clips == 30
    for s, e, nxt in ((0, 12, 8), (8, 20, 16), (16, 30, None)):
        assert np.array_equal(frames.window(s, e, keep_from=nxt)['imgs'], whole['imgs'][s:e])
    assert frames.peak_frames <= 2 * 14 and frames.decoded_frames == len(np.unique(
        whole['frame_inds']))
