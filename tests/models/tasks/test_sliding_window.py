"""Sliding-window grounding: the window plan, stitching, cross-window NMS, and the model
path tools/test.py takes (MomentGrounder with test_cfg.long_video)."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmvpeft  # noqa: F401
from mmvpeft.models.tasks.sliding_window import (WindowStitcher, check_long_video_cfg,
                                                 decode_stitched, finish_prediction,
                                                 plan_windows, run_windows)
from mmvpeft.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


@pytest.mark.parametrize('n,window,stride', [(10, 4, 2), (9, 4, 3), (100, 16, 8), (17, 16, 16),
                                             (5, 8, 4), (40, 40, 20), (41, 40, 1)])
def test_plan_covers_every_clip_with_full_windows(n, window, stride):
    spans = plan_windows(n, window, stride)
    covered = np.zeros(n, int)
    for s, e in spans:
        covered[s:e] += 1
        assert e - s == min(window, n)
    assert covered.min() >= 1 and spans[0][0] == 0 and spans[-1][1] == n
    starts = [s for s, _ in spans]
    assert starts == sorted(set(starts))
    assert all(b - a <= stride for a, b in zip(starts, starts[1:]))


def test_plan_and_cfg_refuse_bad_values():
    with pytest.raises(ValueError, match='stride'):
        plan_windows(10, 4, 5)
    with pytest.raises(ValueError, match='long_video.window'):
        check_long_video_cfg(dict(mode='sliding'))
    with pytest.raises(ValueError, match='long_video.mode'):
        check_long_video_cfg(dict(mode='slide', window=4))
    with pytest.raises(KeyError, match='strid'):
        check_long_video_cfg(dict(window=4, strid=2))
    assert check_long_video_cfg(dict(window=9))['stride'] == 4


def _fake_forward(signal, dist, edge_error=0.0, relative=False):
    """A deterministic stand-in for the model: clip logits are the signal, except at both
    edges of every window, where they are off by ``edge_error`` (lost context). With
    ``relative``, logits are the signal minus the window's best plus 3: like a model trained
    only on videos that contain the moment, every window's best clip scores high."""
    def forward(chunk):
        idx = [torch.cat([torch.arange(s, e) for s, e in runs]) for runs in chunk]
        longest = max(len(i) for i in idx)
        logits = torch.full((len(chunk), longest), -20.0)
        dists = torch.zeros(len(chunk), longest, 2)
        for k, i in enumerate(idx):
            x = signal[i].clone()
            if relative:
                x = x - x.max() + 3.0
            x[0] += edge_error
            x[-1] += edge_error
            logits[k, :len(i)], dists[k, :len(i)] = x, dist[i]
        return dict(logits=logits, dist=dists)
    return forward


def test_stitching_a_local_model_equals_one_pass_over_the_whole_video():
    g = torch.Generator().manual_seed(0)
    n = 203
    signal, dist = torch.randn(n, generator=g), torch.rand(n, 2, generator=g) * 3
    cfg = check_long_video_cfg(dict(window=16, stride=8))
    updates = []
    prob, d = run_windows(_fake_forward(signal, dist), n, cfg, updates.append)
    assert torch.allclose(prob, signal.sigmoid(), atol=1e-6)
    assert torch.allclose(d, dist, atol=1e-6)
    assert sum(updates) == len(plan_windows(n, 16, 8))


def test_edge_clips_weigh_less_where_another_window_sees_them_in_context():
    n = 120
    signal, dist = torch.zeros(n), torch.ones(n, 2)
    cfg = check_long_video_cfg(dict(window=16, stride=8))
    prob, _ = run_windows(_fake_forward(signal, dist, edge_error=4.0), n, cfg)
    # the video's own first and last clips have no other window: their error stays
    assert prob[0] == pytest.approx(torch.tensor(4.0).sigmoid().item(), abs=1e-6)
    # with equal weights, an inner edge clip would average 4.0 and 0.0 -> sigmoid(4) / 2 + 1/4
    inner = prob[8:-8]
    plain = (torch.tensor(4.0).sigmoid().item() + 0.5) / 2
    assert inner.max().item() < plain - 0.05
    stitcher = WindowStitcher(n, 16, 8)
    with pytest.raises(RuntimeError, match='never covered'):
        stitcher.result()


def test_a_short_moment_at_the_end_is_found_once_across_windows():
    n, clip_len = 440, 2.0  # 11x a 40-clip window
    signal = torch.full((n, ), -4.0)
    dist = torch.full((n, 2), 0.5)
    # a 3-clip moment at clips 420-422 (840-846 s): every clip of it points to its ends
    for i in range(420, 423):
        signal[i] = 3.0
        dist[i] = torch.tensor([i + 0.5 - 420, 423 - (i + 0.5)])
    cfg = check_long_video_cfg(dict(window=40, stride=20))
    prob, d = run_windows(_fake_forward(signal, dist), n, cfg)
    pred = decode_stitched(prob, d, clip_len, n * clip_len, nms_thr=0.7, max_windows=5,
                           pre_nms_topk=50)
    best = pred['pred_relevant_windows'][0]
    assert best[:2] == pytest.approx([840.0, 846.0], abs=1e-4)
    # the three clips seen by two windows each gave one window after the NMS
    assert not any(w[0] >= 838 and w[1] <= 848 for w in pred['pred_relevant_windows'][1:])
    assert len(pred['pred_saliency_scores']) == n


def _demo_model(window=None, stride=None):
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'demo', 'grounding_demo.py'))
    if window:
        cfg.model.test_cfg['long_video'] = dict(window=window, stride=stride)
    init_default_scope('mmvpeft')
    torch.manual_seed(0)
    return MODELS.build(cfg.model).eval()


def test_model_predicts_long_videos_in_windows_and_short_ones_as_before():
    plain, windowed = _demo_model(), _demo_model(window=12, stride=6)
    windowed.load_state_dict(plain.state_dict())
    g = torch.Generator().manual_seed(1)
    text = torch.randn(2, 5, 48, generator=g)
    text_mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])

    def batch(t, valid):
        video = torch.randn(2, t, 64, generator=g)
        mask = torch.arange(t)[None] < torch.tensor(valid)[:, None]
        samples = [dict(clip_len=2.0, duration=2.0 * v, num_clips=v) for v in valid]
        return dict(video_feat=video, video_mask=mask, text_feat=text,
                    text_mask=text_mask), samples

    with torch.no_grad():
        inputs, samples = batch(10, [10, 7])  # no longer than the window: unchanged
        a = plain(inputs, [dict(s) for s in samples], mode='predict')
        b = windowed(inputs, [dict(s) for s in samples], mode='predict')
        for x, y in zip(a, b):
            assert x['pred_relevant_windows'] == y['pred_relevant_windows']
        inputs, samples = batch(50, [50, 31])
        preds = windowed(inputs, samples, mode='predict')
    assert [len(p['pred_saliency_scores']) for p in preds] == [50, 31]
    for p, v in zip(preds, (50, 31)):
        w = torch.tensor(p['pred_relevant_windows'])
        assert (w[:, 0] >= 0).all() and (w[:, 1] <= 2.0 * v + 1e-5).all()
        assert w[:, 2].tolist() == sorted(w[:, 2].tolist(), reverse=True)
        assert p['clip_len'] == 2.0  # the sample's meta is carried over
    # sample 1 alone (its padding cut off) gives the same prediction: padding never leaks
    with torch.no_grad():
        alone = windowed({k: (v[1:2, :31] if k.startswith('video') else v[1:2])
                          for k, v in inputs.items()}, [samples[1]], mode='predict')[0]
    assert alone['pred_saliency_scores'] == pytest.approx(preds[1]['pred_saliency_scores'],
                                                          abs=1e-5)


def _events(n, moment, distractors, strength=2.0):
    """Signal of -4 with 3-clip events: the queried one at ``moment`` scores 5, the others
    ``strength``; distances point to each event's ends."""
    signal, dist = torch.full((n, ), -4.0), torch.full((n, 2), 0.5)
    for start, value in [(moment, 5.0)] + [(d, strength) for d in distractors]:
        for i in range(start, start + 3):
            signal[i] = value
            dist[i] = torch.tensor([i + 0.5 - start, start + 3 - (i + 0.5)])
    return signal, dist


@pytest.mark.parametrize('rescore', [True, False])
def test_candidates_compared_side_by_side_calibrate_windows_that_lack_the_moment(rescore):
    """Every window's best event scores high (the model ranks within a video); only the
    side-by-side comparison of the windows' candidates finds the queried moment."""
    n = 440
    signal, dist = _events(n, 420, distractors=range(10, 400, 25))
    cfg = check_long_video_cfg(dict(window=40, stride=20, rescore=rescore))
    forward = _fake_forward(signal, dist, relative=True)
    prob, d = run_windows(forward, n, cfg)
    pred = finish_prediction(forward, prob, d, 2.0, 2.0 * n, cfg, max_windows=5)
    best = pred['pred_relevant_windows'][0]
    if rescore:
        assert best[:2] == pytest.approx([840.0, 846.0], abs=1e-4)
        scores = [w[2] for w in pred['pred_relevant_windows']]
        assert scores == sorted(scores, reverse=True) and all(0 <= x <= 1 for x in scores)
    else:  # plain stitching: an earlier window's distractor ties with the moment and wins
        assert best[:2] != pytest.approx([840.0, 846.0], abs=1e-4)
