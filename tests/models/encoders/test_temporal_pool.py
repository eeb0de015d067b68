"""TemporalPool: masked mean, and the transformer pool that starts as the mean."""
import pytest
import torch
from torch import nn

from mmvpeft.models.encoders.temporal_pool import TemporalPool
from mmvpeft.registry import MODELS

E = 16


def data(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 6, E, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=bool)
    return x, mask


def perturbed_transformer(**kw):
    """A transformer pool whose zero-initialised projection has been moved (as by training),
    so it no longer equals the mean and the tests below can tell padding leaks."""
    torch.manual_seed(0)
    pool = TemporalPool('transformer', dim=E, num_heads=4, num_layers=2, **kw)
    nn.init.normal_(pool.proj.weight, std=0.3)
    return pool.eval()


def test_mean_equals_hand_mean():
    x, mask = data()
    pool = MODELS.build(dict(type='TemporalPool', mode='mean'))
    out = pool(x, mask)
    hand = torch.stack([x[0].mean(0), x[1, :3].mean(0), x[2, 0]])
    torch.testing.assert_close(out, hand)
    torch.testing.assert_close(pool(x), x.mean(1))
    assert list(pool.parameters()) == []


def test_transformer_starts_as_the_mean():
    x, mask = data()
    pool = TemporalPool('transformer', dim=E, num_heads=4)
    torch.testing.assert_close(pool(x, mask), TemporalPool('mean')(x, mask), rtol=0, atol=0)


@pytest.mark.parametrize('make', [lambda: TemporalPool('mean'), perturbed_transformer],
                         ids=['mean', 'transformer'])
def test_padding_never_changes_the_result(make):
    pool = make()
    x, mask = data()
    out = pool(x, mask)
    garbage = x.clone()
    garbage[~mask] = 1e4 * torch.randn(int((~mask).sum()), E)
    torch.testing.assert_close(pool(garbage, mask), out, rtol=1e-5, atol=1e-5)
    # The same as pooling each video alone at its own length, and as padding further.
    for b in range(3):
        n = int(mask[b].sum())
        torch.testing.assert_close(pool(x[b:b + 1, :n]), out[b:b + 1], rtol=1e-5, atol=1e-5)
    longer = torch.cat([x, torch.randn(3, 2, E)], 1)
    torch.testing.assert_close(pool(longer, torch.cat([mask, torch.zeros(3, 2, dtype=bool)], 1)),
                               out, rtol=1e-5, atol=1e-5)


def test_perturbed_transformer_differs_from_mean_and_uses_order():
    pool = perturbed_transformer()
    x, mask = data()
    out = pool(x, mask)
    assert not torch.allclose(out, TemporalPool('mean')(x, mask), atol=1e-3)
    # Position embeddings make the pool order-aware, unlike the mean.
    flipped = pool(x[:1].flip(1))
    assert not torch.allclose(flipped, out[:1], atol=1e-4)


def test_gradients_reach_the_encoder_after_the_first_step():
    x, mask = data()
    pool = TemporalPool('transformer', dim=E, num_heads=4)
    opt = torch.optim.SGD(pool.parameters(), lr=0.5)
    target = torch.randn(3, E)
    for step in range(2):
        opt.zero_grad()
        ((pool(x, mask) - target) ** 2).sum().backward()
        enc_grad = sum(p.grad.abs().sum() for p in pool.encoder.parameters() if p.grad is not None)
        if step == 0:
            assert pool.proj.weight.grad.abs().sum() > 0 and enc_grad == 0
        else:
            assert enc_grad > 0
        opt.step()


def test_video_without_valid_frames_gives_zeros():
    x, _ = data()
    mask = torch.zeros(3, 6, dtype=bool)
    mask[0] = True
    for pool in (TemporalPool('mean'), perturbed_transformer()):
        out = pool(x, mask)
        assert torch.isfinite(out).all() and (out[1:] == 0).all() and (out[0] != 0).any()


def test_argument_errors():
    with pytest.raises(ValueError, match='mode'):
        TemporalPool('max')
    with pytest.raises(ValueError, match='divisible'):
        TemporalPool('transformer', dim=10, num_heads=4)
    pool = TemporalPool('transformer', dim=E, num_heads=4, max_frames=4)
    with pytest.raises(ValueError, match='max_frames'):
        pool(torch.zeros(1, 5, E))
    with pytest.raises(ValueError, match='mask'):
        pool(torch.zeros(1, 3, E), torch.ones(1, 4, dtype=bool))
