import math

import pytest
import torch
import torch.nn.functional as F

from mmvpeft.models.losses import GIoU1DLoss, L1BoundaryLoss, SigmoidFocalLoss
from mmvpeft.models.losses.utils import per_sample_mean


def test_per_sample_mean_normalises_each_sample_then_batch():
    loss = torch.tensor([[1., 3., 100.], [2., 2., 2.]])
    weight = torch.tensor([[1., 1., 0.], [1., 0., 0.]])
    # sample 0: (1 + 3) / 2 = 2; sample 1: 2 / 1 = 2; batch mean 2.
    assert per_sample_mean(loss, weight).item() == pytest.approx(2.0)


def test_batch_split_equals_mean_of_halves():
    # The property multi-process training relies on: equal shards average to the whole.
    torch.manual_seed(0)
    logits, target = torch.randn(4, 7), torch.rand(4, 7) > 0.5
    weight = (torch.rand(4, 7) > 0.3).float()
    loss = SigmoidFocalLoss()
    whole = loss(logits, target, weight)
    halves = (loss(logits[:2], target[:2], weight[:2]) + loss(logits[2:], target[2:], weight[2:])) / 2
    torch.testing.assert_close(whole, halves)


def test_focal_reduces_to_bce():
    logits, target = torch.randn(2, 5), torch.rand(2, 5) > 0.5
    w = torch.ones(2, 5)
    bce = F.binary_cross_entropy_with_logits(logits, target.float())
    torch.testing.assert_close(SigmoidFocalLoss(gamma=0, alpha=None)(logits, target, w), bce)
    # Focusing shrinks the loss of confident correct predictions most.
    easy = torch.tensor([[6.0]])
    assert SigmoidFocalLoss(alpha=None)(easy, torch.ones(1, 1, dtype=bool), torch.ones(1, 1)) < \
        1e-4 * SigmoidFocalLoss(gamma=0, alpha=None)(easy, torch.ones(1, 1, dtype=bool), torch.ones(1, 1))


def test_giou_hand_computed():
    # Same clip centre: pred [-1, 3], target [-2, 1] -> inter 2, union 5, hull 5 -> GIoU 0.4.
    pred, target = torch.tensor([[[1., 3.]]]), torch.tensor([[[2., 1.]]])
    w = torch.ones(1, 1)
    assert GIoU1DLoss()(pred, target, w).item() == pytest.approx(0.6)
    assert GIoU1DLoss()(target, target, w).item() == pytest.approx(0.0, abs=1e-6)
    assert L1BoundaryLoss(loss_weight=2.0)(pred, target, w).item() == pytest.approx(2 * 3.0)


def test_giou_disjoint_windows_exceed_one():
    # pred [-0, 0.5] (d=(0, .5)) vs target [-3, -2] can't happen with non-negative distances
    # around one centre, so check a degenerate zero-length prediction instead: GIoU = -hull
    # term, loss = 1 + (hull - union) / hull.
    pred, target = torch.tensor([[[0., 0.]]]), torch.tensor([[[1., 1.]]])
    val = GIoU1DLoss()(pred, target, torch.ones(1, 1)).item()
    assert math.isclose(val, 1.0, rel_tol=1e-5)
