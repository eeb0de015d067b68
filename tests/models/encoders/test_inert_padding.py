"""Padding is inert whatever it holds: NaN / inf in padded clips or words leave the valid
outputs, the loss and every gradient of CrossModalEncoder and TemporalPool bit-identical to
zero padding."""
import pytest
import torch

from mmvpeft.models.encoders import TemporalPool
from mmvpeft.registry import MODELS

PADS = [float('nan'), float('inf'), -float('inf')]


def _check(module, run):
    out = {}
    for value in (0.0, None):
        module.zero_grad()
        loss, inputs_grads = run(value)
        grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
        out[value is None] = (loss, grads, inputs_grads)
    (l0, g0, i0), (l1, g1, i1) = out[False], out[True]
    assert torch.isfinite(l0) and g0
    torch.testing.assert_close(l1, l0, rtol=0, atol=0)
    assert g1.keys() == g0.keys()
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], rtol=0, atol=0, msg=name)
    for a, b in zip(i1, i0):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize('pad', PADS)
@pytest.mark.parametrize('fusion', ['joint', 'cross'])
def test_cross_modal_encoder(fusion, pad):
    torch.manual_seed(0)
    enc = MODELS.build(dict(type='CrossModalEncoder', video_dim=6, text_dim=5, dim=16,
                            num_heads=2, dropout=0.0, fusion=fusion, num_text_layers=1,
                            num_video_layers=1,
                            adapter=dict(type='ReadAdapter', hidden_dim=4,
                                         bidirectional=True))).double()
    for m in enc.modules():
        if type(m).__name__ == 'ReadAdapter':
            torch.nn.init.normal_(m.up.weight, std=0.5)
    vmask = torch.tensor([[1] * 8, [1] * 5 + [0] * 3]).bool()
    tmask = torch.tensor([[1] * 4, [1] * 2 + [0] * 2]).bool()
    video = torch.randn(2, 8, 6, dtype=torch.float64)
    text = torch.randn(2, 4, 5, dtype=torch.float64)

    def run(value):
        value = pad if value is None else value
        v = video.masked_fill(~vmask[..., None], value).requires_grad_()
        t = text.masked_fill(~tmask[..., None], value).requires_grad_()
        out = enc(v, vmask, t, tmask)
        loss = (out['feats'][vmask].square().sum() + out['video_states'][vmask].square().sum()
                + out['text_states'][tmask].square().sum())
        loss.backward()
        return loss.detach(), [v.grad[vmask], t.grad[tmask]]
    _check(enc, run)


@pytest.mark.parametrize('pad', PADS)
@pytest.mark.parametrize('mode', ['mean', 'transformer'])
def test_temporal_pool(mode, pad):
    torch.manual_seed(0)
    pool = TemporalPool(mode=mode, dim=8, num_layers=1, num_heads=2) if mode != 'mean' \
        else TemporalPool(mode='mean')
    pool = pool.double()
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]).bool()
    frames = torch.randn(2, 4, 8, dtype=torch.float64)

    def run(value):
        value = pad if value is None else value
        x = frames.masked_fill(~mask[..., None], value).requires_grad_()
        loss = pool(x, mask).square().sum()
        loss.backward()
        return loss.detach(), [x.grad[mask]]
    if mode == 'mean':  # no parameters: check the value and the input gradient only
        (l0, (g0, )), (l1, (g1, )) = run(0.0), run(None)
        torch.testing.assert_close(l1, l0, rtol=0, atol=0)
        torch.testing.assert_close(g1, g0, rtol=0, atol=0)
    else:
        _check(pool, run)
