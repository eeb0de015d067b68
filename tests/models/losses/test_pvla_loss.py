"""PVLALoss: value against POT, envelope gradients, masking and options."""
import numpy as np
import ot
import pytest
import torch

from mmvpeft.models.losses.pvla_loss import PVLALoss
from mmvpeft.registry import MODELS


def _states(bsz=3, nv=6, nl=4, dim=5, seed=0, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(bsz, nv, dim, generator=g, dtype=torch.float64) * scale
    y = torch.randn(bsz, nl, dim, generator=g, dtype=torch.float64) * scale
    return x, y


def _np_cost(x, y, kind):
    x, y = x.detach().numpy(), y.detach().numpy()
    if kind == 'cosine':
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        yn = y / np.linalg.norm(y, axis=1, keepdims=True)
        return 1 - xn @ yn.T
    return 0.5 * ((x[:, None, :] - y[None, :, :])**2).sum(-1)


def _pot_loss(x, y, vmask, tmask, kind='sqeuclidean', mass=0.5, eps=0.1, iters=100,
              normalize=False):
    """Reference: per-sample POT on the unpadded sub-problem, mean of <C, T>."""
    vals = []
    for i in range(len(x)):
        xi = x[i][vmask[i]] if vmask is not None else x[i]
        yi = y[i][tmask[i]] if tmask is not None else y[i]
        cost = _np_cost(xi, yi, kind)
        a = np.full(len(xi), 1 / len(xi))
        b = np.full(len(yi), 1 / len(yi))
        solver_cost = cost / cost.max() if normalize else cost
        plan = ot.partial.entropic_partial_wasserstein(a, b, solver_cost, eps, m=mass,
                                                       numItermax=iters)
        vals.append((cost * plan).sum())
    return float(np.mean(vals))


def _masks(bsz=3, nv=6, nl=4):
    vmask = torch.ones(bsz, nv, dtype=torch.bool)
    tmask = torch.ones(bsz, nl, dtype=torch.bool)
    vmask[1, 4:] = False
    vmask[2, 2:] = False
    tmask[0, 3:] = False
    tmask[2, 1:] = False
    return vmask, tmask


@pytest.mark.parametrize('normalize', [True, False])
@pytest.mark.parametrize('log_domain', [False, True])
def test_value_matches_pot(log_domain, normalize):
    x, y = _states()
    # tol=None: every iteration runs, POT's iterates exactly (the default normalised cost,
    # or the raw one)
    loss = PVLALoss(mass=0.5, eps=0.1, num_iters=100, log_domain=log_domain,
                    normalize_cost=normalize, tol=None)
    out = loss(x, y)
    assert out.dim() == 0 and out.dtype == torch.float64
    ref = _pot_loss(x, y, None, None, normalize=normalize)
    assert out.item() == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_value_matches_pot_with_masks():
    x, y = _states()
    vmask, tmask = _masks()
    loss = PVLALoss(mass=0.7, eps=0.2, num_iters=80, tol=None)
    out = loss(x, y, vmask, tmask)
    ref = _pot_loss(x, y, vmask, tmask, mass=0.7, eps=0.2, iters=80, normalize=True)
    assert out.item() == pytest.approx(ref, rel=1e-9, abs=1e-12)
    plan = loss.plan(x, y, vmask, tmask)
    assert plan.shape == (3, 6, 4)
    assert (plan[~(vmask[:, :, None] & tmask[:, None, :])] == 0).all()
    torch.testing.assert_close(plan.sum((1, 2)), torch.full((3, ), 0.7, dtype=torch.float64))


def test_gradients_reach_both_sides_and_padding_gets_none():
    x, y = _states()
    vmask, tmask = _masks()
    # Garbage in padded slots must not leak into the loss or the gradients.
    x = x.masked_fill(~vmask[:, :, None], float('nan')).requires_grad_()
    y = y.masked_fill(~tmask[:, :, None], 1e6).requires_grad_()
    out = PVLALoss()(x, y, vmask, tmask)
    out.backward()
    assert torch.isfinite(out)
    for states, mask in ((x, vmask), (y, tmask)):
        assert torch.isfinite(states.grad).all()
        assert (states.grad[~mask] == 0).all()
        assert (states.grad[mask].abs().sum(-1) > 0).all()


@pytest.mark.parametrize('masked', [False, True])
def test_gradient_is_the_envelope_gradient(masked):
    x, y = _states(seed=1)
    vmask, tmask = _masks() if masked else (None, None)
    x.requires_grad_()
    y.requires_grad_()
    loss = PVLALoss(mass=0.6, eps=0.15, loss_weight=2.0)
    loss(x, y, vmask, tmask).backward()
    plan = loss.plan(x, y, vmask, tmask)
    assert not plan.requires_grad
    # d/dx_i sum_ij T_ij 0.5 |x_i - y_j|^2 = sum_j T_ij (x_i - y_j), T fixed.
    scale = 2.0 / len(x)
    gx = scale * (plan.sum(2, keepdim=True) * x - plan @ y)
    gy = scale * (plan.sum(1)[:, :, None] * y - plan.transpose(1, 2) @ x)
    torch.testing.assert_close(x.grad, gx.detach(), rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(y.grad, gy.detach(), rtol=1e-10, atol=1e-13)


def test_loss_weight_scales_value_and_gradient():
    x, y = _states()
    grads = []
    vals = []
    for w in (1.0, 2.5):
        xg = x.clone().requires_grad_()
        val = PVLALoss(loss_weight=w)(xg, y)
        val.backward()
        vals.append(val.detach())
        grads.append(xg.grad)
    torch.testing.assert_close(vals[1], 2.5 * vals[0])
    torch.testing.assert_close(grads[1], 2.5 * grads[0])


def test_cosine_cost():
    x, y = _states(seed=2)
    vmask, tmask = _masks()
    loss = PVLALoss(cost='cosine', mass=0.5, eps=0.05, num_iters=60, normalize_cost=False,
                    tol=None)
    out = loss(x, y, vmask, tmask)
    ref = _pot_loss(x, y, vmask, tmask, kind='cosine', eps=0.05, iters=60)
    assert out.item() == pytest.approx(ref, rel=1e-9, abs=1e-12)
    # Scale invariance tells it apart from the squared-Euclidean cost.
    torch.testing.assert_close(loss(3 * x, 0.5 * y, vmask, tmask), out)
    xg = x.clone().requires_grad_()
    loss(xg, y, vmask, tmask).backward()
    assert torch.isfinite(xg.grad).all() and xg.grad[vmask].abs().sum() > 0
    assert (xg.grad[~vmask] == 0).all()


def test_normalize_cost_option():
    x, y = _states(scale=3.0)
    vmask, tmask = _masks()
    loss = PVLALoss(normalize_cost=True, eps=0.05, num_iters=50, tol=None)
    out = loss(x, y, vmask, tmask)
    ref = _pot_loss(x, y, vmask, tmask, eps=0.05, iters=50, normalize=True)
    assert out.item() == pytest.approx(ref, rel=1e-9, abs=1e-12)
    # The plan no longer depends on the scale of the states.
    torch.testing.assert_close(loss.plan(10 * x, 10 * y, vmask, tmask),
                               loss.plan(x, y, vmask, tmask))
    assert not torch.allclose(PVLALoss(eps=0.05, num_iters=50, normalize_cost=False)
                              .plan(x, y, vmask, tmask),
                              loss.plan(x, y, vmask, tmask))


def test_float32_large_states_stay_finite():
    # Costs of ~10^3 against eps = 0.1: exp(-C / eps) spans far beyond float32.
    x, y = _states(bsz=2, nv=16, nl=8, dim=32, seed=3, scale=4.0)
    x = x.float().requires_grad_()
    y = y.float().requires_grad_()
    out = PVLALoss(mass=1.0)(x, y)
    out.backward()
    assert out.dtype == torch.float32 and torch.isfinite(out)
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()


def test_registry_build_and_repr():
    loss = MODELS.build(dict(type='PVLALoss', mass=0.3, eps=0.2, cost='cosine'))
    assert isinstance(loss, PVLALoss)
    assert loss.mass == 0.3 and loss.cost == 'cosine'
    assert 'mass=0.3' in repr(loss)


@pytest.mark.parametrize('kwargs, match', [
    (dict(mass=0.0), 'mass'),
    (dict(mass=1.2), 'mass'),
    (dict(eps=0.0), 'eps'),
    (dict(cost='l1'), 'cost'),
    (dict(num_iters=0), 'num_iters'),
])
def test_bad_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PVLALoss(**kwargs)


def test_bad_inputs_raise():
    x, y = _states()
    loss = PVLALoss()
    with pytest.raises(ValueError, match='share B and r'):
        loss(x, y[..., :3])
    with pytest.raises(ValueError, match=r'\(B, N, r\)'):
        loss(x[0], y)
    with pytest.raises(ValueError, match='video_mask must have shape'):
        loss(x, y, torch.ones(3, 5, dtype=torch.bool))
    empty = torch.ones(3, 4, dtype=torch.bool)
    empty[1] = False
    with pytest.raises(ValueError, match='at least one valid token in text_mask'):
        loss(x, y, None, empty)


def test_low_precision_inputs_are_solved_in_float32():
    x, y = _states(seed=4)
    x32, y32 = x.float(), y.float()
    loss = PVLALoss()
    ref = loss(x32, y32)
    # Autocast would run the cost matmul in bfloat16; the loss opts out.
    with torch.autocast('cpu', dtype=torch.bfloat16):
        under_autocast = loss(x32, y32)
    assert under_autocast.dtype == torch.float32
    torch.testing.assert_close(under_autocast, ref, rtol=1e-6, atol=0)
    xb = x32.bfloat16().requires_grad_()
    out = loss(xb, y32.bfloat16())
    out.backward()
    assert out.dtype == torch.float32 and xb.grad.dtype == torch.bfloat16
    assert torch.isfinite(xb.grad.float()).all()
    torch.testing.assert_close(out, loss(xb.detach().float(), y32.bfloat16().float()))


@pytest.mark.parametrize('pad', [float('nan'), float('inf'), -float('inf')])
def test_padding_is_inert_whatever_it_holds(pad):
    """Loss and gradients of valid states with NaN / inf padding equal those with zeros."""
    x, y = _states()
    vmask, tmask = _masks()
    results = []
    for value in (0.0, pad):
        xv = x.masked_fill(~vmask[:, :, None], value).requires_grad_()
        yv = y.masked_fill(~tmask[:, :, None], value).requires_grad_()
        loss = PVLALoss()
        out = loss(xv, yv, vmask, tmask)
        out.backward()
        results.append((out.detach(), xv.grad[vmask], yv.grad[tmask], loss.last_residual))
    for got, want in zip(results[1], results[0]):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
