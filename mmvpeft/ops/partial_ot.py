"""Batched entropic partial optimal transport (Benamou et al., 2015).

A batched torch port of ``ot.partial.entropic_partial_wasserstein`` (POT), the
solver PVLA (READ, AAAI 2024) uses to align adapter video and text states:

.. math::

    T^* = \\arg\\min_{T \\ge 0,\\ T1 \\le a,\\ T^\\top 1 \\le b,\\ 1^\\top T 1 = m}
          \\langle C, T \\rangle - \\mathrm{reg} \\cdot H(T)

POT's scheme is an iterated Bregman (KL) projection with Dykstra corrections
onto three sets (row sums ``<= a``, column sums ``<= b``, total mass ``= m``),
started from ``K = exp(-C / reg) * m / sum(exp(-C / reg))``. Each projection
multiplies the plan by a row vector, a column vector or a scalar, so every
iterate has the form ``diag(u) K diag(v)`` and each Dykstra correction
``q = q * K_prev / K_new`` equals the reciprocal of the scaling just applied.
POT stores ``q1, q2, q3`` as full matrices; here they are stored as the row
vector, column vector and scalar they provably are, which gives the same
iterates with two batched mat-vec products per iteration instead of a dozen
full-matrix passes, and no ``0 / 0`` on entries whose kernel value is zero.

Padding: tokens with zero weight in ``a`` or ``b`` are removed from the
problem (their kernel entries are set to exactly zero before the initial
normalisation, and their scalings are pinned to 1), so each sample's valid
block follows the iterates POT produces on the unpadded sub-problem (up to rounding)
and padded rows/columns of the plan are exactly 0.
"""
import math
import warnings
from typing import Optional, Union

import torch
from torch import Tensor

__all__ = ['entropic_partial_wasserstein']


def _check_inputs(a: Tensor, b: Tensor, cost: Tensor, reg: float,
                  mass: Union[float, Tensor], num_iters: int,
                  stop_thr: Optional[float]) -> Tensor:
    """Validate shapes and feasibility; return ``mass`` as a ``(B,)`` tensor."""
    if not all(isinstance(t, Tensor) for t in (a, b, cost)):
        raise TypeError('a, b and cost must be torch.Tensor')
    if cost.dim() != 3:
        raise ValueError('cost must be a (B, N, M) tensor, got '
                         f'{getattr(cost, "shape", type(cost))}')
    if not cost.is_floating_point():
        raise TypeError(f'cost must be floating point, got {cost.dtype}')
    bsz, n, m = cost.shape
    if n == 0 or m == 0 or bsz == 0:
        raise ValueError(f'cost must be non-empty, got shape {tuple(cost.shape)}')
    if a.shape != (bsz, n):
        raise ValueError(f'a must have shape (B, N) = {(bsz, n)} to match cost '
                         f'{tuple(cost.shape)}, got {tuple(a.shape)}')
    if b.shape != (bsz, m):
        raise ValueError(f'b must have shape (B, M) = {(bsz, m)} to match cost '
                         f'{tuple(cost.shape)}, got {tuple(b.shape)}')
    if not (isinstance(reg, (int, float)) and math.isfinite(reg) and reg > 0):
        raise ValueError(f'reg must be a finite positive number, got {reg!r}')
    if not (isinstance(num_iters, int) and num_iters >= 1):
        raise ValueError(f'num_iters must be a positive int, got {num_iters!r}')
    if stop_thr is not None and not stop_thr >= 0:
        raise ValueError(f'stop_thr must be None or >= 0, got {stop_thr!r}')
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError('a and b must be finite')
    if (a < 0).any() or (b < 0).any():
        raise ValueError('a and b must be non-negative (use 0 for padded tokens)')
    valid = (a > 0)[:, :, None] & (b > 0)[:, None, :]
    if not torch.isfinite(cost[valid]).all():
        raise ValueError('cost must be finite wherever a > 0 and b > 0')

    mass = torch.as_tensor(mass, dtype=cost.dtype, device=cost.device)
    if mass.dim() == 0:
        mass = mass.expand(bsz)
    if mass.shape != (bsz, ):
        raise ValueError(f'mass must be a float or a (B,) = ({bsz},) tensor, '
                         f'got shape {tuple(mass.shape)}')
    if not (torch.isfinite(mass).all() and (mass > 0).all()):
        raise ValueError(f'mass must be finite and > 0, got {mass.tolist()}')
    # Relative slack so that m = 1 with weights that sum to 1 up to rounding
    # (e.g. uniform float32 weights) stays feasible.
    cap = torch.minimum(a.sum(1), b.sum(1))
    slack = 10 * max(n, m) * torch.finfo(cost.dtype).eps
    bad = mass > cap * (1 + slack)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(
            f'Problem infeasible: mass must be <= min(sum(a), sum(b)); sample {i} '
            f'has mass {mass[i].item():.6g} > {cap[i].item():.6g}')
    return mass


def _solve_exp(a: Tensor, b: Tensor, cost: Tensor, reg: float, mass: Tensor,
               num_iters: int, stop_thr: Optional[float]) -> Tensor:
    """Multiplicative-domain iterations; see ``entropic_partial_wasserstein``."""
    row_ok, col_ok = a > 0, b > 0
    valid = row_ok[:, :, None] & col_ok[:, None, :]
    neg = torch.where(valid, -cost / reg, cost.new_tensor(-math.inf))
    # Shifting by the per-sample max cancels in the normalisation below (same
    # K as POT up to rounding) but guarantees the largest entry is 1, so a
    # sample never underflows to an all-zero kernel.
    neg = neg - neg.amax(dim=(1, 2), keepdim=True)
    kernel = torch.exp(neg)
    underflow = int(((kernel == 0) & valid).sum())
    if underflow:
        warnings.warn(
            f'exp(-cost / reg) underflowed to 0 on {underflow} valid entries '
            f'({cost.dtype}, reg={reg:g}): those entries can never carry mass, so the '
            'plan may be wrong; use log_domain=True or a larger reg', RuntimeWarning,
            stacklevel=3)
    kernel = kernel * (mass / kernel.sum(dim=(1, 2)))[:, None, None]
    kernel_t = kernel.transpose(1, 2)

    one = cost.new_tensor(1.0)
    u = torch.ones_like(a)  # plan = u[:, :, None] * kernel * v[:, None, :]
    v = torch.ones_like(b)
    q1 = torch.ones_like(a)  # Dykstra corrections: row, column, total mass
    q2 = torch.ones_like(b)
    q3 = torch.ones_like(mass)

    def plan():
        return u[:, :, None] * kernel * v[:, None, :]

    for it in range(num_iters):
        check = stop_thr is not None and it % 10 == 0
        if check:
            prev = plan()
        # Projection onto {T 1 <= a}. Padded rows have a = 0 and row sum 0:
        # pin their scaling to 1 (any finite value keeps their zero rows).
        u = u * q1
        row = u * torch.bmm(kernel, v[:, :, None]).squeeze(2)
        d1 = torch.where(row_ok, torch.minimum(a / row, one), one)
        u = u * d1
        q1 = 1 / d1
        # Projection onto {T^T 1 <= b}.
        v = v * q2
        col = v * torch.bmm(kernel_t, u[:, :, None]).squeeze(2)
        d2 = torch.where(col_ok, torch.minimum(b / col, one), one)
        v = v * d2
        q2 = 1 / d2
        # Projection onto {sum T = m}; the column sums after d2 give sum(T).
        total = (col * d2).sum(1) * q3
        d3 = mass / total
        u = u * (q3 * d3)[:, None]
        q3 = 1 / d3
        if check and (plan() - prev).abs().max().item() <= stop_thr:
            break
    out = plan()
    # One end-of-solve sync instead of POT's per-iteration NaN check.
    if not torch.isfinite(out).all():
        warnings.warn(
            'the multiplicative-domain scalings overflowed (non-finite plan); '
            'use log_domain=True', RuntimeWarning, stacklevel=3)
    return out


def _solve_log(a: Tensor, b: Tensor, cost: Tensor, reg: float, mass: Tensor,
               num_iters: int, stop_thr: Optional[float]) -> Tensor:
    """Log-domain iterations: the same projections on ``log u``, ``log v``."""
    row_ok, col_ok = a > 0, b > 0
    valid = row_ok[:, :, None] & col_ok[:, None, :]
    zero = cost.new_tensor(0.0)
    log_k = torch.where(valid, -cost / reg, cost.new_tensor(-math.inf))
    log_mass = mass.log()
    log_k = log_k + (log_mass - torch.logsumexp(log_k, dim=(1, 2)))[:, None, None]
    # log(0) = -inf on padded tokens; those entries are masked by where() below.
    log_a, log_b = a.log(), b.log()

    f = torch.zeros_like(a)  # log plan = f[:, :, None] + log_k + g[:, None, :]
    g = torch.zeros_like(b)
    lq1 = torch.zeros_like(a)
    lq2 = torch.zeros_like(b)
    lq3 = torch.zeros_like(mass)

    def log_plan():
        return f[:, :, None] + log_k + g[:, None, :]

    for it in range(num_iters):
        check = stop_thr is not None and it % 10 == 0
        if check:
            prev = log_plan().exp()
        f = f + lq1
        log_row = f + torch.logsumexp(log_k + g[:, None, :], dim=2)
        ld1 = torch.where(row_ok, torch.clamp_max(log_a - log_row, 0), zero)
        f = f + ld1
        lq1 = -ld1
        g = g + lq2
        log_col = g + torch.logsumexp(log_k + f[:, :, None], dim=1)
        ld2 = torch.where(col_ok, torch.clamp_max(log_b - log_col, 0), zero)
        g = g + ld2
        lq2 = -ld2
        log_total = torch.logsumexp(log_col + ld2, dim=1) + lq3
        ld3 = log_mass - log_total
        f = f + (lq3 + ld3)[:, None]
        lq3 = -ld3
        if check and (log_plan().exp() - prev).abs().max().item() <= stop_thr:
            break
    return log_plan().exp()


def entropic_partial_wasserstein(a: Tensor,
                                 b: Tensor,
                                 cost: Tensor,
                                 reg: float,
                                 mass: Union[float, Tensor],
                                 num_iters: int = 1000,
                                 stop_thr: Optional[float] = None,
                                 log_domain: bool = True) -> Tensor:
    """Batched entropic partial-OT plan, POT's Bregman-projection iteration.

    Per sample it computes the same iterates as
    ``ot.partial.entropic_partial_wasserstein(a, b, cost, reg, m=mass,
    numItermax=num_iters)``, for the whole batch at once, on the device and in
    the dtype of ``cost``. Only the iteration loop is a Python loop.

    Args:
        a (Tensor): Row weights ``(B, N)``, non-negative; 0 marks padding.
        b (Tensor): Column weights ``(B, M)``, non-negative; 0 marks padding.
        cost (Tensor): Cost matrices ``(B, N, M)``, floating point. Entries in
            padded rows/columns are ignored (they may be inf or NaN).
        reg (float): Entropic regularisation ``> 0``.
        mass (float | Tensor): Mass to transport, a float or a ``(B,)`` tensor,
            with ``0 < mass <= min(sum(a), sum(b))`` per sample.
        num_iters (int): Number of iterations (POT's ``numItermax``; its
            default 1000). Defaults to 1000.
        stop_thr (float, optional): If set, every 10 iterations (after
            iterations 0, 10, 20, ... like POT) stop once the max absolute
            change of the plan over that iteration, across the whole batch, is
            ``<= stop_thr``. Each check costs a host sync. ``None`` (default)
            runs all ``num_iters`` iterations, which is what POT's default
            ``stopThr=1e-100`` does in practice.
        log_domain (bool): Run the same projections on log-scalings with
            log-sum-exp (same iterates up to rounding) instead of on
            ``exp(-cost / reg)`` and plain scalings. The multiplicative form
            loses kernel entries to exact 0 once ``(cost - min cost) / reg``
            exceeds ~87-103 in float32 (~745 in float64), and where the plan
            needs mass there (mass near ``min(sum(a), sum(b))``, many
            iterations) its scalings overflow and the plan turns NaN; both
            raise a ``RuntimeWarning``. PVLA's costs are unnormalised squared
            distances of learned states with ``reg = 0.1``, so a cost range of
            ~9 already reaches that in float32. Hence the default ``True``;
            ``False`` is ~1.4x (float32) to ~2.3x (float64) faster on CPU
            (tools/benchmark_pvla.py) and fine when the cost
            range is small relative to ``reg``.

    Returns:
        Tensor: Transport plan ``(B, N, M)`` with row sums ``<= a``, column
        sums ``<= b`` and total ``mass`` (at convergence; the total holds
        after every iteration). Padded rows/columns are exactly 0.

    Raises:
        TypeError: If an input is not a tensor or ``cost`` is not floating.
        ValueError: On mismatched shapes, negative or non-finite weights,
            non-finite cost on valid entries, ``reg <= 0``, ``mass <= 0`` or
            ``mass > min(sum(a), sum(b))``.
    """
    mass = _check_inputs(a, b, cost, reg, mass, num_iters, stop_thr)
    a = a.to(cost)
    b = b.to(cost)
    solve = _solve_log if log_domain else _solve_exp
    return solve(a, b, cost, float(reg), mass, num_iters, stop_thr)
