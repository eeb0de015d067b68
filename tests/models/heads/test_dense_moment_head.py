import numpy as np
import torch

from mmvpeft.models.heads.dense_moment_head import DenseMomentHead, build_targets


def test_targets_hand_computed():
    # clip_len 2 s; window [3, 9] s = [1.5, 4.5] clips; centres 0.5..5.5.
    sample = dict(gt_windows=np.array([[3.0, 9.0]]), clip_len=2.0, num_clips=6)
    fg, dist = build_targets([sample], 7, 'cpu')
    # Boundaries are inclusive: centres 1.5, 2.5, 3.5 and 4.5 lie in [1.5, 4.5].
    assert fg[0].tolist() == [False, True, True, True, True, False, False]
    torch.testing.assert_close(dist[0, 2], torch.tensor([1.0, 2.0]))  # centre 2.5
    torch.testing.assert_close(dist[0, 4], torch.tensor([3.0, 0.0]))  # centre 4.5


def test_short_window_gets_its_midpoint_clip_and_overlaps_take_shortest():
    sample = dict(gt_windows=np.array([[0.0, 12.0], [4.2, 5.0]]), clip_len=2.0, num_clips=6)
    fg, dist = build_targets([sample], 6, 'cpu')
    assert fg[0].all()
    # Clip 2 (centre 2.5 clips = 5 s) holds the short window's midpoint (4.6 s): it regresses
    # to [4.2, 5.0] s = [2.1, 2.5] clips, clamped to non-negative distances.
    torch.testing.assert_close(dist[0, 2], torch.tensor([0.4, 0.0]))
    torch.testing.assert_close(dist[0, 0], torch.tensor([0.5, 5.5]))  # long window


def test_padding_never_foreground():
    sample = dict(gt_windows=np.array([[0.0, 20.0]]), clip_len=2.0, num_clips=3)
    fg, _ = build_targets([sample], 8, 'cpu')
    assert fg[0].tolist() == [True] * 3 + [False] * 5


def test_predict_windows_in_seconds_sorted_and_clipped():
    head = DenseMomentHead(in_dim=8, hidden_dim=8)
    logits = torch.tensor([[0.0, 3.0, 1.0, -5.0]])
    dist = torch.tensor([[[0.5, 0.5], [1.5, 10.0], [0.5, 0.5], [0.5, 0.5]]])
    mask = torch.tensor([[True, True, True, False]])
    out = head.predict(dict(logits=logits, dist=dist), mask,
                       [dict(clip_len=2.0, duration=5.5)], nms_thr=0.7, max_windows=10)[0]
    windows = np.array(out['pred_relevant_windows'])
    assert len(windows) == 3  # padded clip never proposes
    np.testing.assert_allclose(windows[0], [0.0, 5.5, 1 / (1 + np.exp(-3.0))], rtol=1e-6)
    assert (np.diff(windows[:, 2]) <= 0).all()
    assert len(out['pred_saliency_scores']) == 3
