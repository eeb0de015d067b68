"""Sigmoid focal loss for per-clip foreground classification."""
import torch
import torch.nn.functional as F
from torch import nn

from mmvpeft.registry import MODELS
from .utils import per_sample_mean


@MODELS.register_module()
class SigmoidFocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017) on logits; ``gamma=0, alpha=None`` gives plain BCE.

    Args:
        gamma: focusing parameter.
        alpha: weight of positives (``1 - alpha`` for negatives); None disables it.
        loss_weight: multiplier of the returned loss.
    """

    def __init__(self, gamma: float = 2.0, alpha: float = 0.25, loss_weight: float = 1.0):
        super().__init__()
        self.gamma, self.alpha, self.loss_weight = gamma, alpha, loss_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor,
                weight: torch.Tensor) -> torch.Tensor:
        """Args: logits, target (0/1), weight: ``(B, T)``. Returns a scalar."""
        target = target.to(logits.dtype)
        ce = F.binary_cross_entropy_with_logits(logits, target, reduction='none')
        p = logits.sigmoid()
        p_t = p * target + (1 - p) * (1 - target)
        loss = ce * (1 - p_t) ** self.gamma
        if self.alpha is not None:
            loss = loss * (self.alpha * target + (1 - self.alpha) * (1 - target))
        return self.loss_weight * per_sample_mean(loss, weight)
