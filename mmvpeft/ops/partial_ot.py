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
POT stores ``q1, q2, q3`` as full matrices; they are provably a row vector, a
column vector and a scalar, and each correction undoes the previous projection of
its set exactly, so every iterate is ``s * diag(d1) K diag(d2)`` with ``d1``,
``d2``, ``s`` the *latest* row, column and mass projections. Iterating on those
three gives POT's iterates (up to rounding) with two batched mat-vec products and a
handful of vector ops per iteration instead of a dozen full-matrix passes, and no
``0 / 0`` on entries whose kernel value is zero.

Stopping: ``tol`` stops once the KKT residual of the plan (marginal violations,
plus slack on rows / columns whose constraint is active) is below ``tol`` times the
mass, checked every ``check_every`` iterations; ``stop_thr`` is POT's plan-change
criterion. Domain: ``log_domain='auto'`` runs the multiplicative iterations when the
batch's cost range over ``reg`` keeps every kernel entry and scaling a normal float,
and log-sum-exp iterations only when it does not.

Padding: tokens with zero weight in ``a`` or ``b`` are removed from the
problem (their kernel entries are set to exactly zero before the initial
normalisation, and their scalings are pinned to 1), so each sample's valid
block follows the iterates POT produces on the unpadded sub-problem (up to rounding)
and padded rows/columns of the plan are exactly 0.
"""
import math
import warnings
from typing import Optional, Tuple, Union

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


# Largest (max - min valid cost) / reg for which 'auto' uses the multiplicative domain. Below
# it exp(-C / reg) and every scaling stay normal floats (kernel >= e^-range, scalings <= 1 and
# the mass scalar <= ~e^range / N M), far from float32's e^-87 / e^88.
_EXP_SAFE_RANGE = {torch.float32: 50.0, torch.float64: 500.0}


def _kkt_residual(row: Tensor, col: Tensor, a: Tensor, b: Tensor, d1: Tensor, d2: Tensor,
                  mass: Tensor) -> Tensor:
    """Per-sample KKT residual of a plan ``s diag(d1) K diag(d2)``, relative to ``mass``.

    The plan is optimal iff its row / column sums respect ``a`` / ``b`` and every row or
    column whose dual scaling is below 1 (an active constraint) is exactly tight. Violations
    count fully; slack on a row counts with weight ``1 - d1`` (0 when the row constraint is
    inactive), so the residual is 0 exactly at the optimum and continuous in the iterates.
    """
    res = (row - a).clamp_min(0) + (1 - d1) * (a - row).clamp_min(0)
    res_c = (col - b).clamp_min(0) + (1 - d2) * (b - col).clamp_min(0)
    return (res.sum(1) + res_c.sum(1)) / mass


def _solve_exp(a: Tensor, b: Tensor, cost: Tensor, reg: float, mass: Tensor, num_iters: int,
               stop_thr: Optional[float], tol: Optional[float], check_every: int,
               warn: bool) -> Tuple[Tensor, dict]:
    """Multiplicative-domain iterations; see ``entropic_partial_wasserstein``.

    With POT's Dykstra corrections folded in, every iterate is ``s * diag(d1) K diag(d2)``
    with ``d1``, ``d2`` the latest row / column projections and ``s`` the latest mass
    projection (module docstring), so one iteration is two batched mat-vecs and a few
    vector ops.
    """
    row_ok, col_ok = a > 0, b > 0
    valid = row_ok[:, :, None] & col_ok[:, None, :]
    neg = torch.where(valid, -cost / reg, cost.new_tensor(-math.inf))
    # Shifting by the per-sample max cancels in the normalisation below (same
    # K as POT up to rounding) but guarantees the largest entry is 1, so a
    # sample never underflows to an all-zero kernel.
    neg = neg - neg.amax(dim=(1, 2), keepdim=True)
    kernel = torch.exp(neg)
    if warn:
        underflow = int(((kernel == 0) & valid).sum())
        if underflow:
            warnings.warn(
                f'exp(-cost / reg) underflowed to 0 on {underflow} valid entries '
                f'({cost.dtype}, reg={reg:g}): those entries can never carry mass, so the '
                'plan may be wrong; use log_domain=True or a larger reg', RuntimeWarning,
                stacklevel=5)
    kernel = kernel * (mass / kernel.sum(dim=(1, 2)))[:, None, None]
    kernel_t = kernel.transpose(1, 2).contiguous()
    # Padded rows / columns have zero weight and an all-zero kernel row: adding 1 to their
    # denominator makes their scaling 0 / 1 = 0 instead of 0 / 0 (their plan stays 0).
    pad_a = (~row_ok).to(cost.dtype)
    pad_b = (~col_ok).to(cost.dtype)
    mass_ = mass[:, None]
    s = torch.ones_like(mass_)  # (B, 1)
    d1 = torch.ones_like(a)
    d2 = torch.ones_like(b)
    # Mat-vecs as (1 x N) @ (N x M) bmm: ~6x faster on CPU than (N x M) @ (M x 1).
    kv = torch.bmm(d2[:, None, :], kernel_t).squeeze(1)  # K d2, reused by the next row step
    iters = residual_at = 0
    residual = None
    for it in range(num_iters):
        check = stop_thr is not None and it % 10 == 0
        if check:
            prev = s[:, :, None] * d1[:, :, None] * kernel * d2[:, None, :]
        # Row projection {T 1 <= a}: the row sums before it are s * d1_undone * K d2 = s K d2.
        d1 = torch.div(a, torch.addcmul(pad_a, s, kv)).clamp_max_(1)
        ktw = torch.bmm(d1[:, None, :], kernel).squeeze(1)  # K^T d1
        # Column projection {T^T 1 <= b}, then the mass projection {sum T = m}.
        d2 = torch.div(b, torch.addcmul(pad_b, s, ktw)).clamp_max_(1)
        s = mass_ / (ktw * d2).sum(1, keepdim=True)
        kv = torch.bmm(d2[:, None, :], kernel_t).squeeze(1)
        iters = it + 1
        if check:
            change = (s[:, :, None] * d1[:, :, None] * kernel * d2[:, None, :] - prev)
            if change.abs().max().item() <= stop_thr:
                break
        if tol is not None and (iters % check_every == 0 or iters == num_iters):
            residual = _kkt_residual(s * d1 * kv, s * d2 * ktw, a, b, d1, d2, mass)
            residual_at = iters
            if residual.max().item() <= tol:
                break
    if residual_at != iters:  # the residual of the plan returned, not of an earlier one
        residual = _kkt_residual(s * d1 * kv, s * d2 * ktw, a, b, d1, d2, mass)
    out = s[:, :, None] * d1[:, :, None] * kernel * d2[:, None, :]
    # One end-of-solve sync instead of POT's per-iteration NaN check.
    finite = bool(torch.isfinite(out).all())
    if warn and not finite:
        warnings.warn(
            'the multiplicative-domain scalings overflowed (non-finite plan); '
            'use log_domain=True', RuntimeWarning, stacklevel=5)
    return out, dict(iters=iters, domain='exp', finite=finite, residual=residual)


def _solve_log(a: Tensor, b: Tensor, cost: Tensor, reg: float, mass: Tensor, num_iters: int,
               stop_thr: Optional[float], tol: Optional[float], check_every: int
               ) -> Tuple[Tensor, dict]:
    """Log-domain iterations: the same projections on ``log d1``, ``log d2``, ``log s``."""
    row_ok, col_ok = a > 0, b > 0
    valid = row_ok[:, :, None] & col_ok[:, None, :]
    zero = cost.new_tensor(0.0)
    log_k = torch.where(valid, -cost / reg, cost.new_tensor(-math.inf))
    log_mass = mass.log()[:, None]
    log_k = log_k + (log_mass[:, 0] - torch.logsumexp(log_k, dim=(1, 2)))[:, None, None]
    log_k_t = log_k.transpose(1, 2).contiguous()
    # log(0) = -inf on padded tokens; those entries are masked by where() below.
    log_a, log_b = a.log(), b.log()

    ls = torch.zeros_like(log_mass)  # log plan = ls + ld1[:, :, None] + log_k + ld2[:, None, :]
    ld1 = torch.zeros_like(a)
    ld2 = torch.zeros_like(b)

    def log_plan():
        return ls[:, :, None] + ld1[:, :, None] + log_k + ld2[:, None, :]

    log_kv = torch.logsumexp(log_k + ld2[:, None, :], dim=2)
    log_ktw = torch.logsumexp(log_k_t + ld1[:, None, :], dim=2)
    iters = residual_at = 0
    residual = None
    for it in range(num_iters):
        check = stop_thr is not None and it % 10 == 0
        if check:
            prev = log_plan().exp()
        ld1 = torch.where(row_ok, torch.clamp_max(log_a - (ls + log_kv), 0), zero)
        log_ktw = torch.logsumexp(log_k_t + ld1[:, None, :], dim=2)
        ld2 = torch.where(col_ok, torch.clamp_max(log_b - (ls + log_ktw), 0), zero)
        ls = log_mass - torch.logsumexp(log_ktw + ld2, dim=1, keepdim=True)
        log_kv = torch.logsumexp(log_k + ld2[:, None, :], dim=2)
        iters = it + 1
        if check and (log_plan().exp() - prev).abs().max().item() <= stop_thr:
            break
        if tol is not None and (iters % check_every == 0 or iters == num_iters):
            residual = _kkt_residual((ls + ld1 + log_kv).exp(), (ls + ld2 + log_ktw).exp(), a, b,
                                     ld1.exp(), ld2.exp(), mass)
            residual_at = iters
            if residual.max().item() <= tol:
                break
    if residual_at != iters:  # the residual of the plan returned, not of an earlier one
        residual = _kkt_residual((ls + ld1 + log_kv).exp(), (ls + ld2 + log_ktw).exp(), a, b,
                                 ld1.exp(), ld2.exp(), mass)
    return log_plan().exp(), dict(iters=iters, domain='log', finite=True, residual=residual)


def entropic_partial_wasserstein(a: Tensor,
                                 b: Tensor,
                                 cost: Tensor,
                                 reg: float,
                                 mass: Union[float, Tensor],
                                 num_iters: int = 1000,
                                 stop_thr: Optional[float] = None,
                                 log_domain: Union[bool, str] = 'auto',
                                 tol: Optional[float] = None,
                                 check_every: int = 10,
                                 return_info: bool = False):
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
        num_iters (int): Most iterations (POT's ``numItermax``; its default
            1000). Defaults to 1000.
        stop_thr (float, optional): POT's criterion: every 10 iterations (after
            iterations 0, 10, 20, ... like POT) stop once the max absolute
            change of the plan over that iteration, across the whole batch, is
            ``<= stop_thr``. ``None`` (default) disables it, which is what POT's
            default ``stopThr=1e-100`` does in practice.
        log_domain (bool | str): ``True``: iterate on log-scalings with
            log-sum-exp. ``False``: on ``exp(-cost / reg)`` and plain scalings,
            ~2x faster, but it loses kernel entries to exact 0 once
            ``(cost - min cost) / reg`` exceeds ~87-103 in float32 (~745 in
            float64), and where the plan needs mass there its scalings overflow
            and the plan turns NaN; both raise a ``RuntimeWarning``.
            ``'auto'`` (default): multiplicative when the batch's valid cost
            range over ``reg`` is at most 50 (float32) / 500 (float64), where
            every kernel entry and scaling stays a normal float, else log. All
            three give the same iterates up to rounding.
        tol (float, optional): Stop once every sample's KKT residual (sum of
            marginal violations plus slack on active rows / columns, divided by
            its mass) is ``<= tol``, checked every ``check_every`` iterations
            (and after the last). ``None`` (default): no such check. PVLA uses
            1e-4.
        check_every (int): Iterations between ``tol`` checks (each costs a
            host sync). Defaults to 10.
        return_info (bool): Also return a dict with ``iters`` (iterations
            run), ``domain`` (``'exp'`` or ``'log'``) and ``residual`` (the
            ``(B,)`` KKT residual of the returned plan, relative to the mass).

    Returns:
        Tensor | tuple: Transport plan ``(B, N, M)`` with row sums ``<= a``,
        column sums ``<= b`` and total ``mass`` (at convergence; the total
        holds after every iteration). Padded rows/columns are exactly 0. With
        ``return_info``, ``(plan, info)``.

    Raises:
        TypeError: If an input is not a tensor or ``cost`` is not floating.
        ValueError: On mismatched shapes, negative or non-finite weights,
            non-finite cost on valid entries, ``reg <= 0``, ``mass <= 0``,
            ``mass > min(sum(a), sum(b))`` or a bad ``log_domain`` / ``tol`` /
            ``check_every``.
    """
    mass = _check_inputs(a, b, cost, reg, mass, num_iters, stop_thr)
    if log_domain not in (True, False, 'auto'):
        raise ValueError(f"log_domain must be True, False or 'auto', got {log_domain!r}")
    if tol is not None and not tol >= 0:
        raise ValueError(f'tol must be None or >= 0, got {tol!r}')
    if not (isinstance(check_every, int) and check_every >= 1):
        raise ValueError(f'check_every must be a positive int, got {check_every!r}')
    a = a.to(cost)
    b = b.to(cost)
    reg = float(reg)
    if log_domain == 'auto':
        log_domain = _cost_range(a, b, cost) / reg > _EXP_SAFE_RANGE.get(cost.dtype, 0.0)
    # Autocast would run the mat-vecs in half precision; the iterations need cost's dtype.
    with torch.autocast(device_type=cost.device.type, enabled=False):
        if log_domain:
            plan, info = _solve_log(a, b, cost, reg, mass, num_iters, stop_thr, tol,
                                    check_every)
        else:
            plan, info = _solve_exp(a, b, cost, reg, mass, num_iters, stop_thr, tol,
                                    check_every, warn=True)
    return (plan, info) if return_info else plan


def _cost_range(a: Tensor, b: Tensor, cost: Tensor) -> float:
    """Largest (max - min) of the valid costs of any sample of the batch."""
    valid = (a > 0)[:, :, None] & (b > 0)[:, None, :]
    hi = cost.masked_fill(~valid, -math.inf).amax(dim=(1, 2))
    lo = cost.masked_fill(~valid, math.inf).amin(dim=(1, 2))
    return float((hi - lo).max())
