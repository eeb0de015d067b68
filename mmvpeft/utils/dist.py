"""Distributed helpers: a differentiable all-gather, and process groups for the data tools
(feature extraction, prefix cache) that share their videos among ranks."""
import os
from typing import List, Optional, Sequence, Tuple

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


def rank_and_world() -> Tuple[int, int]:
    """(rank, world size) of the default group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def rank_shard(items: Sequence) -> List:
    """This rank's share of ``items``: items r, r + W, r + 2W, ... (all of them alone).

    Every rank must pass the same sequence (e.g. a sorted listing made before anything is
    written), so the shards partition it.
    """
    rank, world = rank_and_world()
    return list(items)[rank::world]


def all_gather_objects(obj) -> list:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` alone."""
    rank, world = rank_and_world()
    if world == 1:
        return [obj]
    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if rank_and_world()[1] > 1:
        dist.barrier()


def init_tool_distributed(launcher: str) -> int:
    """Starts the process group of a data tool's ``--launcher`` (gloo on CPU, NCCL on GPUs).

    Args:
        launcher: ``'none'`` (nothing to start), ``'pytorch'`` (torchrun's ``RANK``,
            ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) or ``'slurm'`` (srun's
            ``SLURM_PROCID`` / ``SLURM_NTASKS`` / ``SLURM_LOCALID``; ``MASTER_ADDR`` must be
            set).

    Returns:
        int: this process's rank.

    Raises:
        RuntimeError: a variable the launcher needs is missing (the message names it).
    """
    if launcher == 'none':
        return 0
    if launcher not in ('pytorch', 'slurm'):
        raise ValueError(f"launcher must be 'none', 'pytorch' or 'slurm', got {launcher!r}")
    if launcher == 'slurm':
        os.environ.setdefault('RANK', os.environ.get('SLURM_PROCID', '0'))
        os.environ.setdefault('WORLD_SIZE', os.environ.get('SLURM_NTASKS', '1'))
        os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
        os.environ.setdefault('MASTER_PORT', '29500')
    for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        if key not in os.environ:
            raise RuntimeError(f'--launcher {launcher}: {key} is not set; start the tool with '
                               'torchrun (tools/dist_extract.sh) or srun')
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
        dist.init_process_group(backend='nccl' if torch.cuda.is_available() else 'gloo')
    return dist.get_rank()
