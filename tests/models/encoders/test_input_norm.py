"""CrossModalEncoder(input_norm='batch'): inputs are standardised per channel over the
batch's valid clips and words, so a common offset / scale of the features (what a frozen
random tower adds to every clip) no longer reaches the fusion; padding stays out of it."""
import pytest
import torch

from mmvpeft.registry import MODELS


def _encoder(**kw):
    torch.manual_seed(0)
    return MODELS.build(dict(type='CrossModalEncoder', video_dim=6, text_dim=5, dim=8,
                             num_heads=2, num_fusion_layers=1, dropout=0.0, **kw))


def _inputs():
    g = torch.Generator().manual_seed(1)
    video, text = torch.randn(3, 7, 6, generator=g), torch.randn(3, 4, 5, generator=g)
    vmask = torch.tensor([[True] * 7, [True] * 5 + [False] * 2, [True] * 3 + [False] * 4])
    tmask = torch.tensor([[True] * 4, [True] * 2 + [False] * 2, [True] * 3 + [False]])
    return video, vmask, text, tmask


def test_batch_norm_removes_a_common_offset_and_scale_and_ignores_padding():
    enc = _encoder(input_norm='batch').train()
    video, vmask, text, tmask = _inputs()
    ref = enc(video, vmask, text, tmask)['feats']
    shift, scale = torch.linspace(-5, 5, 6), torch.linspace(0.5, 4, 6)
    padded = torch.where(vmask[..., None], video * scale + shift, torch.full_like(video, 1e3))
    out = enc(padded, vmask, text * 3 - 2, tmask)['feats']
    torch.testing.assert_close(out[vmask], ref[vmask], atol=1e-4, rtol=1e-4)
    # without it the same offset changes every output
    plain = _encoder().train()
    a = plain(video, vmask, text, tmask)['feats']
    b = plain(padded, vmask, text * 3 - 2, tmask)['feats']
    assert (a[vmask] - b[vmask]).abs().max() > 1e-2
    # test time uses the running statistics gathered in training
    enc.eval()
    assert torch.isfinite(enc(video, vmask, text, tmask)['feats']).all()
    assert enc.video_norm.num_batches_tracked == 2


def test_input_norm_refuses_unknown_values():
    with pytest.raises(ValueError, match='input_norm'):
        _encoder(input_norm='layer')
