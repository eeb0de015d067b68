"""Boundary regression losses on per-clip (start, end) distances."""
import torch
from torch import nn

from mmvpeft.registry import MODELS
from .utils import per_sample_mean


@MODELS.register_module()
class L1BoundaryLoss(nn.Module):
    """L1 distance between predicted and target (to-start, to-end) distances."""

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                weight: torch.Tensor) -> torch.Tensor:
        """Args: pred, target ``(B, T, 2)``; weight ``(B, T)``. Returns a scalar."""
        return self.loss_weight * per_sample_mean((pred - target).abs().sum(-1), weight)


def windows_from_distances(dist: torch.Tensor) -> torch.Tensor:
    """``(B, T, 2)`` distances to start/end, relative to each clip's centre -> windows.

    Both windows share the clip centre as origin, so the centre cancels in IoU and the
    returned ``[-d_start, d_end]`` pairs can be compared directly.
    """
    return torch.stack([-dist[..., 0], dist[..., 1]], dim=-1)


@MODELS.register_module()
class GIoU1DLoss(nn.Module):
    """Generalised IoU loss (Rezatofighi et al. 2019) of 1-D windows: ``1 - GIoU``."""

    def __init__(self, loss_weight: float = 1.0, eps: float = 1e-6):
        super().__init__()
        self.loss_weight, self.eps = loss_weight, eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                weight: torch.Tensor) -> torch.Tensor:
        """Args: pred, target ``(B, T, 2)`` non-negative distances; weight ``(B, T)``."""
        p, t = windows_from_distances(pred), windows_from_distances(target)
        inter = (torch.minimum(p[..., 1], t[..., 1]) -
                 torch.maximum(p[..., 0], t[..., 0])).clamp(min=0)
        union = (p[..., 1] - p[..., 0]) + (t[..., 1] - t[..., 0]) - inter
        hull = torch.maximum(p[..., 1], t[..., 1]) - torch.minimum(p[..., 0], t[..., 0])
        giou = inter / union.clamp(min=self.eps) - (hull - union) / hull.clamp(min=self.eps)
        return self.loss_weight * per_sample_mean(1 - giou, weight)
