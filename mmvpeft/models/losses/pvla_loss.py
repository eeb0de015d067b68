"""PVLA: partial video-language alignment loss (READ, AAAI 2024)."""
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmvpeft.ops.partial_ot import entropic_partial_wasserstein
from mmvpeft.registry import MODELS

_COSTS = ('sqeuclidean', 'cosine')


@MODELS.register_module()
class PVLALoss(nn.Module):
    """Partial-OT alignment between adapter video and text states.

    For each sample, with uniform weights ``a`` over the valid video tokens and
    ``b`` over the valid text tokens (each summing to 1), the entropic
    partial-OT plan ``T*`` moving ``mass`` is computed with
    :func:`~mmvpeft.ops.partial_ot.entropic_partial_wasserstein` and the loss is
    ``loss_weight * mean_b <C_b, T*_b>``. The plan is computed under
    ``torch.no_grad()``: by the envelope theorem the gradient of the (entropic)
    OT value w.r.t. the cost is the optimal plan, so gradients flow through
    ``C`` only, without unrolling the iterations.

    Args:
        mass (float): Fraction ``s`` in ``(0, 1]`` of the mass transported.
            Defaults to 0.5.
        eps (float): Entropic regularisation ``reg`` of the solver, in cost
            units. Defaults to 0.1.
        cost (str): ``'sqeuclidean'`` for ``0.5 * ||x - y||^2`` or ``'cosine'``
            for ``1 - cos(x, y)``. Defaults to ``'sqeuclidean'``.
        num_iters (int): Most solver iterations (fewer once ``tol`` is met).
            Defaults to 100.
        log_domain (bool | str): Solver domain. ``'auto'`` (default) runs the
            fast multiplicative iterations while the batch's ``cost range /
            eps`` is at most 50 (float32) and the log domain beyond, where
            ``exp(-C / eps)`` would leave normal floats (squared distances of
            unnormalised states grow during training); ``True`` / ``False``
            force one. The plan is the same up to rounding.
        tol (float, optional): Stop the solver once its KKT residual (marginal
            violations and slack on active rows / columns, relative to the
            mass) is at most ``tol``, checked every 10 iterations. Defaults to
            1e-6 (about 20 iterations on a normalised cost). None runs all
            ``num_iters``: POT's iterates exactly.
        normalize_cost (bool): Divide each sample's cost by its (detached)
            maximum over valid pairs before solving. The plan is then
            invariant to the scale of the states and the solver's
            ``range / eps`` is at most ``1 / eps``, so it converges in a few
            tens of iterations whatever the scale the adapters learn (on the
            raw squared distance of unit-scale states, 100 iterations leave
            the plan ~50% of the mass away from the optimum, at scale 3
            ~180%). The plan is POT's for the cost ``C_b / max(C_b)`` and
            ``reg=eps``, i.e. the optimum for the raw cost at ``reg = eps *
            max(C_b)``; the loss ``<C_b, T*_b>`` uses the raw cost, so its
            gradient is the envelope gradient of that problem. Defaults to
            True; False solves on the raw cost with ``reg=eps`` (the behaviour
            before 2026-12, which converges only for small states).

    After each forward, ``last_residual`` holds the largest KKT residual of the
    batch's plans (a detached scalar tensor; the models log it as
    ``pvla/residual``). Near 0 means the plan is the optimum the envelope
    gradient assumes.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 mass: float = 0.5,
                 eps: float = 0.1,
                 cost: str = 'sqeuclidean',
                 num_iters: int = 100,
                 log_domain: Union[bool, str] = 'auto',
                 tol: Optional[float] = 1e-6,
                 normalize_cost: bool = True,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if not 0 < mass <= 1:
            raise ValueError(f'mass must be in (0, 1], got {mass}')
        if not eps > 0:
            raise ValueError(f'eps must be > 0, got {eps}')
        if cost not in _COSTS:
            raise ValueError(f'cost must be one of {_COSTS}, got {cost!r}')
        if not (isinstance(num_iters, int) and num_iters >= 1):
            raise ValueError(f'num_iters must be a positive int, got {num_iters!r}')
        self.mass = float(mass)
        self.eps = float(eps)
        self.cost = cost
        self.num_iters = num_iters
        if log_domain not in (True, False, 'auto'):
            raise ValueError(f"log_domain must be True, False or 'auto', got {log_domain!r}")
        if tol is not None and not tol >= 0:
            raise ValueError(f'tol must be None or >= 0, got {tol!r}')
        self.log_domain = log_domain
        self.tol = tol
        self.normalize_cost = normalize_cost
        self.loss_weight = float(loss_weight)
        self.last_residual: Optional[Tensor] = None

    def extra_repr(self) -> str:
        return (f'mass={self.mass}, eps={self.eps}, cost={self.cost!r}, '
                f'num_iters={self.num_iters}, log_domain={self.log_domain}, tol={self.tol}, '
                f'normalize_cost={self.normalize_cost}, loss_weight={self.loss_weight}')

    @staticmethod
    def _mask(mask: Optional[Tensor], states: Tensor, name: str) -> Tensor:
        bsz, n = states.shape[:2]
        if mask is None:
            return states.new_ones(bsz, n, dtype=torch.bool)
        if mask.shape != (bsz, n):
            raise ValueError(f'{name} must have shape {(bsz, n)}, got {tuple(mask.shape)}')
        mask = mask.to(device=states.device, dtype=torch.bool)
        if not mask.any(1).all():
            raise ValueError(f'every sample needs at least one valid token in {name}')
        return mask

    def _cost_matrix(self, x: Tensor, y: Tensor) -> Tensor:
        """Pairwise cost ``(B, Nv, Nl)`` of ``x (B, Nv, r)`` and ``y (B, Nl, r)``."""
        if self.cost == 'cosine':
            x = F.normalize(x, dim=-1)
            y = F.normalize(y, dim=-1)
            return 1 - x @ y.transpose(1, 2)
        # Expanded form avoids a (B, Nv, Nl, r) difference tensor; its autograd
        # gradient is the exact sum_j T_ij (x_i - y_j). Clamp rounding below 0.
        sq = 0.5 * (x.pow(2).sum(-1)[:, :, None] + y.pow(2).sum(-1)[:, None, :])
        return (sq - x @ y.transpose(1, 2)).clamp_min(0)

    def _prepare(self, video_states: Tensor, text_states: Tensor,
                 video_mask: Optional[Tensor],
                 text_mask: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
        """Return cost ``(B, Nv, Nl)`` (with grad) and weights ``a``, ``b``."""
        if video_states.dim() != 3 or text_states.dim() != 3:
            raise ValueError('video_states and text_states must be (B, N, r), got '
                             f'{tuple(video_states.shape)} and {tuple(text_states.shape)}')
        if (video_states.shape[0] != text_states.shape[0]
                or video_states.shape[2] != text_states.shape[2]):
            raise ValueError('video_states and text_states must share B and r, got '
                             f'{tuple(video_states.shape)} and {tuple(text_states.shape)}')
        vmask = self._mask(video_mask, video_states, 'video_mask')
        tmask = self._mask(text_mask, text_states, 'text_mask')
        # The solver and the cost run in at least float32 (half-precision
        # Sinkhorn is useless) and outside autocast, which would recast matmuls.
        dtype = torch.promote_types(video_states.dtype, torch.float32)
        with torch.autocast(device_type=video_states.device.type, enabled=False):
            # Zero padded states so that garbage (even NaN) there cannot leak
            # into valid costs or gradients; their gradient is exactly 0.
            x = video_states.to(dtype).masked_fill(~vmask[:, :, None], 0)
            y = text_states.to(dtype).masked_fill(~tmask[:, :, None], 0)
            cost = self._cost_matrix(x, y)
        a = vmask.to(dtype) / vmask.sum(1, keepdim=True)
        b = tmask.to(dtype) / tmask.sum(1, keepdim=True)
        return cost, a, b

    @torch.no_grad()
    def _solve(self, cost: Tensor, a: Tensor, b: Tensor) -> Tensor:
        solver_cost = cost.detach()
        if self.normalize_cost:
            valid = (a > 0)[:, :, None] & (b > 0)[:, None, :]
            scale = solver_cost.masked_fill(~valid, 0).amax(dim=(1, 2))
            scale = scale.clamp_min(torch.finfo(cost.dtype).tiny)
            solver_cost = solver_cost / scale[:, None, None]
        plan, info = entropic_partial_wasserstein(
            a, b, solver_cost, self.eps, self.mass, num_iters=self.num_iters,
            log_domain=self.log_domain, tol=self.tol, return_info=True)
        self.last_residual = info['residual'].max().detach()
        return plan

    def plan(self,
             video_states: Tensor,
             text_states: Tensor,
             video_mask: Optional[Tensor] = None,
             text_mask: Optional[Tensor] = None) -> Tensor:
        """Transport plan used by :meth:`forward`, for inspection.

        Args:
            video_states (Tensor): ``(B, Nv, r)``.
            text_states (Tensor): ``(B, Nl, r)``.
            video_mask (Tensor, optional): ``(B, Nv)`` bool, True = valid.
            text_mask (Tensor, optional): ``(B, Nl)`` bool, True = valid.

        Returns:
            Tensor: Detached plan ``(B, Nv, Nl)`` (float32 or wider), total mass
            ``mass`` per sample, exactly 0 on padded tokens.
        """
        cost, a, b = self._prepare(video_states, text_states, video_mask, text_mask)
        return self._solve(cost, a, b)

    def forward(self,
                video_states: Tensor,
                text_states: Tensor,
                video_mask: Optional[Tensor] = None,
                text_mask: Optional[Tensor] = None) -> Tensor:
        """Compute the PVLA loss.

        Args:
            video_states (Tensor): Adapter video states ``(B, Nv, r)``.
            text_states (Tensor): Adapter text states ``(B, Nl, r)``.
            video_mask (Tensor, optional): ``(B, Nv)`` bool, True = valid.
                None means all valid.
            text_mask (Tensor, optional): ``(B, Nl)`` bool, True = valid.
                None means all valid.

        Returns:
            Tensor: Scalar ``loss_weight * mean_b <C_b, T*_b>``.
        """
        cost, a, b = self._prepare(video_states, text_states, video_mask, text_mask)
        plan = self._solve(cost, a, b)
        return self.loss_weight * (cost * plan).sum(dim=(1, 2)).mean()
