"""Reductions shared by the grounding losses."""
import torch


def per_sample_mean(loss: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean over each sample's weighted positions, then over the batch.

    Normalising per sample (not over the whole batch) makes the loss of a global batch the
    mean of its samples' losses, so data-parallel gradient averaging over equal shards gives
    the same update as one process with the full batch.

    Args:
        loss: ``(B, T)`` element losses.
        weight: ``(B, T)`` non-negative weights (0 for padding / positions not supervised).

    Returns:
        Scalar tensor.
    """
    weight = weight.to(loss.dtype)
    per_sample = (loss * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1e-6)
    return per_sample.mean()
