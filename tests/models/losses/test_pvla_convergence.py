"""PVLA's default plan is (near-)optimal whatever the scale of the states, and its KKT
residual is logged as ``pvla/residual`` (never summed into the loss)."""
import os.path as osp

import numpy as np
import ot
import pytest
import torch
from mmengine.config import Config

from mmvpeft.models import MomentRetriever
from mmvpeft.models.losses.pvla_loss import PVLALoss
from mmvpeft.ops.partial_ot import entropic_partial_wasserstein
from mmvpeft.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
B, NV, NL, R = 8, 64, 20, 32


def _read_tacos_pvla():
    """The PVLALoss of configs/read_tacos.py, as training builds it."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'read_tacos.py'))
    return MODELS.build(cfg.model.pvla_loss)


def _masked_states(scale, seed=0):
    g = torch.Generator().manual_seed(seed)
    vlen = torch.randint(16, NV + 1, (B, ), generator=g)
    tlen = torch.randint(4, NL + 1, (B, ), generator=g)
    vmask = torch.arange(NV)[None] < vlen[:, None]
    tmask = torch.arange(NL)[None] < tlen[:, None]
    x = torch.randn(B, NV, R, generator=g) * scale
    y = torch.randn(B, NL, R, generator=g) * scale
    return x, y, vmask, tmask


def _normalised_cost(x, y, vmask, tmask):
    """0.5 * ||x - y||^2 per sample divided by its max over valid pairs (float64)."""
    x, y = x.double(), y.double()
    cost = 0.5 * ((x[:, :, None] - y[:, None]) ** 2).sum(-1)
    valid = vmask[:, :, None] & tmask[:, None, :]
    return cost / cost.masked_fill(~valid, 0).amax(dim=(1, 2))[:, None, None]


@pytest.mark.parametrize('scale', [0.3, 1.0, 3.0])
def test_read_tacos_plan_is_within_one_percent_of_the_converged_plan(scale):
    loss = _read_tacos_pvla()
    x, y, vmask, tmask = _masked_states(scale)
    plan = loss.plan(x, y, vmask, tmask).double()  # float32 states, as in training
    cost = _normalised_cost(x, y, vmask, tmask)
    a = vmask.double() / vmask.sum(1, keepdim=True)
    b = tmask.double() / tmask.sum(1, keepdim=True)
    converged = entropic_partial_wasserstein(a, b, cost, loss.eps, loss.mass, num_iters=20000,
                                             tol=1e-12)
    l1 = (plan - converged).abs().sum((1, 2)) / loss.mass
    assert l1.max() <= 0.01, l1
    assert loss.last_residual is not None and float(loss.last_residual) < 1e-4
    # POT's converged plan on one unpadded sample agrees with ours at 20,000 iterations
    nv, nl = int(vmask[0].sum()), int(tmask[0].sum())
    pot = ot.partial.entropic_partial_wasserstein(
        np.full(nv, 1 / nv), np.full(nl, 1 / nl), cost[0, :nv, :nl].numpy(), loss.eps,
        m=loss.mass, numItermax=3000)
    assert np.abs(pot - converged[0, :nv, :nl].numpy()).sum() / loss.mass < 1e-6


@pytest.mark.parametrize('scale', [0.3, 1.0, 3.0])
def test_plan_equals_pot_on_the_same_cost(scale):
    """tol=None runs every iteration: POT's plan for the normalised cost, reg=eps."""
    loss = PVLALoss(tol=None)
    x, y, vmask, tmask = _masked_states(scale, seed=1)
    x, y = x[:3].double(), y[:3].double()
    vmask, tmask = vmask[:3], tmask[:3]
    plan = loss.plan(x, y, vmask, tmask)
    cost = _normalised_cost(x, y, vmask, tmask)
    for i in range(3):
        nv, nl = int(vmask[i].sum()), int(tmask[i].sum())
        ref = ot.partial.entropic_partial_wasserstein(
            np.full(nv, 1 / nv), np.full(nl, 1 / nl), cost[i, :nv, :nl].numpy(), loss.eps,
            m=loss.mass, numItermax=loss.num_iters)
        np.testing.assert_allclose(plan[i, :nv, :nl].numpy(), ref, rtol=1e-9, atol=1e-13)


def test_raw_cost_is_far_from_converged_at_unit_scale():
    """The control: without normalisation the same settings are ~50% off at scale 1 (what
    the test above would catch if the default went back)."""
    loss = PVLALoss(normalize_cost=False, tol=None, num_iters=100)
    x, y, vmask, tmask = _masked_states(1.0)
    plan = loss.plan(x.double(), y.double(), vmask, tmask)
    cost, a, b = loss._prepare(x.double(), y.double(), vmask, tmask)
    converged = entropic_partial_wasserstein(a, b, cost.detach(), 0.1, 0.5, num_iters=20000,
                                             tol=1e-12)
    assert (plan - converged).abs().sum((1, 2)).max() / 0.5 > 0.1
    assert float(loss.last_residual) > 1e-2  # and the logged residual shows it


def test_residual_is_logged_not_summed():
    enc = dict(type='CrossModalEncoder', video_dim=6, text_dim=5, dim=16, num_heads=2,
               dropout=0.0, adapter=dict(type='ReadAdapter', hidden_dim=4),
               num_text_layers=1, num_video_layers=1)
    model = MomentRetriever(enc, dict(type='DenseMomentHead', in_dim=16, hidden_dim=16),
                            pvla_loss=dict(type='PVLALoss'), pvla_source='encoder')
    torch.manual_seed(0)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[1, 5:] = False
    inputs = dict(video_feat=torch.randn(2, 8, 6), video_mask=mask,
                  text_feat=torch.randn(2, 4, 5), text_mask=torch.ones(2, 4, dtype=torch.bool))
    samples = [dict(qid=i, gt_windows=np.array([[2.0, 6.0]]), clip_len=2.0,
                    num_clips=int(mask[i].sum()), duration=float(mask[i].sum() * 2))
               for i in range(2)]
    losses = model(inputs, samples, 'loss')
    total, log_vars = model.parse_losses(losses)
    assert 'pvla/residual' in log_vars and 'pvla/residual' not in losses
    assert log_vars['pvla/residual'] is model.pvla_loss.last_residual
    assert 0 <= float(log_vars['pvla/residual']) < 1e-4
    torch.testing.assert_close(total, sum(losses[k] for k in model.loss_keys))
    assert not log_vars['pvla/residual'].requires_grad
