import torch

from mmvpeft.ops.temporal_nms import temporal_nms, window_iou


def test_window_iou_hand_computed():
    a = torch.tensor([[0., 4.], [10., 12.]])
    b = torch.tensor([[2., 6.], [4., 8.]])
    # [0,4]&[2,6]: inter 2, union 6; [0,4]&[4,8]: touch only -> 0; [10,12] overlaps neither.
    torch.testing.assert_close(window_iou(a, b), torch.tensor([[1 / 3, 0.], [0., 0.]]))


def test_nms_suppresses_overlaps_and_keeps_order():
    windows = torch.tensor([[0., 10.], [1., 10.], [20., 30.], [0., 5.]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    # [1,10] has IoU 0.9 with [0,10] -> dropped; [0,5] has IoU 0.5 -> kept at thr 0.7.
    assert temporal_nms(windows, scores, 0.7).tolist() == [0, 2, 3]
    assert temporal_nms(windows, scores, 0.4).tolist() == [0, 2]
    assert temporal_nms(windows, scores, 0.7, max_keep=2).tolist() == [0, 2]
    assert temporal_nms(windows, scores, 1.0).tolist() == [0, 1, 2, 3]


def test_nms_ties_are_stable():
    windows = torch.tensor([[0., 1.], [5., 6.], [10., 11.]])
    assert temporal_nms(windows, torch.ones(3), 0.5).tolist() == [0, 1, 2]
