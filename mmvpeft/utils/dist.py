"""Distributed helpers that keep autograd intact."""
from typing import Optional

import torch
import torch.distributed as dist


def dist_world_size(group: Optional[dist.ProcessGroup] = None) -> int:
    """World size of ``group``, 1 when torch.distributed is unavailable or uninitialised."""
    if not dist.is_available() or not dist.is_initialized():
        return 1
    return dist.get_world_size(group)


class _AllGatherWithGrad(torch.autograd.Function):
    """Concatenate every rank's tensor along dim 0; backward sums the gradients.

    Forward: rank ``r`` holds ``x_r (B_r, *rest)``; every rank returns
    ``cat([x_0, ..., x_{W-1}])``. Sizes may differ per rank (they are exchanged first).

    Backward: each rank has a gradient ``g^(s)`` for the whole gathered tensor (its own
    loss's). ``x_r`` influenced every rank's output, so its gradient is
    ``sum_s g^(s)[rows of r]``: an all-reduce (sum) of the gathered gradient, sliced.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, group) -> torch.Tensor:
        world_size = dist.get_world_size(group)
        rank = dist.get_rank(group)
        size = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
        sizes = [torch.zeros_like(size) for _ in range(world_size)]
        dist.all_gather(sizes, size, group=group)
        sizes = [int(s) for s in sizes]
        max_size = max(sizes)
        # all_gather needs equal shapes: pad to the largest batch, then drop the padding.
        padded = x.new_zeros((max_size, ) + x.shape[1:])
        padded[:x.shape[0]] = x
        gathered = [torch.empty_like(padded) for _ in range(world_size)]
        dist.all_gather(gathered, padded.contiguous(), group=group)
        ctx.group, ctx.sizes, ctx.rank = group, sizes, rank
        return torch.cat([g[:n] for g, n in zip(gathered, sizes)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        start = sum(ctx.sizes[:ctx.rank])
        return grad[start:start + ctx.sizes[ctx.rank]], None


def all_gather_with_grad(x: torch.Tensor,
                         group: Optional[dist.ProcessGroup] = None) -> torch.Tensor:
    """Gather ``x`` from all ranks along dim 0, differentiably.

    Args:
        x: ``(B_r, *rest)`` on this rank; ``B_r`` may differ between ranks.
        group: Process group; the default group when None.

    Returns:
        torch.Tensor: ``(sum_r B_r, *rest)``, rank 0's rows first. Without an initialised
        process group (or with world size 1) ``x`` itself.

    Gradient: the gradient w.r.t. ``x`` is the SUM over ranks of each rank's gradient w.r.t.
    the gathered rows of ``x``. If every rank computes the same global loss ``L`` from the
    gathered tensor, each rank thus gets ``W * dL/dx_r``, which DDP's averaging over the
    ``W`` ranks turns back into exactly ``dL/dtheta`` (see ``SymmetricInfoNCELoss``).
    """
    if dist_world_size(group) == 1:
        return x
    return _AllGatherWithGrad.apply(x, group)
