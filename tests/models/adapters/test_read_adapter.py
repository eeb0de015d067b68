"""ReadAdapter and its injection into open_clip blocks."""
import pytest
import torch
import torch.nn as nn
from open_clip.transformer import ResidualAttentionBlock, Transformer

from mmvpeft.models.adapters.inject import (ReadResidualAttentionBlock, ReadSequenceContext,
                                            inject_read_adapters, read_context)
from mmvpeft.models.adapters.read_adapter import ReadAdapter
from mmvpeft.registry import MODELS

D, R = 16, 8


def _adapter(seed=0, randomize_up=True, **kwargs):
    torch.manual_seed(seed)
    adapter = ReadAdapter(D, hidden_dim=R, **kwargs).eval()
    if randomize_up:  # zero `up` would hide every recurrence effect
        nn.init.normal_(adapter.up.weight, std=0.5)
        nn.init.normal_(adapter.up.bias, std=0.5)
    return adapter


def test_registered():
    assert MODELS.get('ReadAdapter') is ReadAdapter


@pytest.mark.parametrize('rnn_type', ['rnn', 'gru', 'lstm'])
@pytest.mark.parametrize('bidirectional', [False, True])
def test_zero_init_is_identity_and_state_shape(rnn_type, bidirectional):
    adapter = ReadAdapter(D, hidden_dim=R, rnn_type=rnn_type, bidirectional=bidirectional)
    assert torch.count_nonzero(adapter.up.weight) == 0 and torch.count_nonzero(adapter.up.bias) == 0
    x = torch.randn(3, 5, D)
    assert torch.equal(adapter(x), x)
    # Bidirectional directions are summed: state width stays r.
    assert adapter.last_states.shape == (3, 5, R)
    assert adapter.last_states.grad_fn is not None


@pytest.mark.parametrize('rnn_type', ['rnn', 'gru', 'lstm'])
def test_unidirectional_is_causal_bidirectional_is_not(rnn_type):
    x = torch.randn(2, 6, D)
    x2 = x.clone()
    x2[:, 3] += 1.0
    uni = _adapter(rnn_type=rnn_type)
    y, s = uni(x), uni.last_states
    y2, s2 = uni(x2), uni.last_states
    torch.testing.assert_close(y2[:, :3], y[:, :3], rtol=0, atol=0)
    torch.testing.assert_close(s2[:, :3], s[:, :3], rtol=0, atol=0)
    assert not torch.allclose(y2[:, 4:], y[:, 4:])  # later steps do see the change
    assert not torch.allclose(s2[:, 4:], s[:, 4:])

    bi = _adapter(rnn_type=rnn_type, bidirectional=True)
    y, s = bi(x), bi.last_states
    y2, s2 = bi(x2), bi.last_states
    assert not torch.allclose(y2[:, :3], y[:, :3])
    assert not torch.allclose(s2[:, :3], s[:, :3])


def test_recurrence_runs_over_sequence_not_batch():
    adapter = _adapter()
    x = torch.randn(3, 5, D)
    y, s = adapter(x), adapter.last_states
    x2 = x.clone()
    x2[1] = torch.randn(5, D)
    y2, s2 = adapter(x2), adapter.last_states
    for i in (0, 2):
        torch.testing.assert_close(y2[i], y[i], rtol=0, atol=0)
        torch.testing.assert_close(s2[i], s[i], rtol=0, atol=0)
    # And a single sample alone gives the same result as inside the batch.
    torch.testing.assert_close(adapter(x[:1]), y[:1])


@pytest.mark.parametrize('rnn_type', ['rnn', 'gru', 'lstm'])
@pytest.mark.parametrize('bidirectional', [False, True])
def test_padding_never_leaks(rnn_type, bidirectional):
    adapter = _adapter(rnn_type=rnn_type, bidirectional=bidirectional)
    x = torch.randn(3, 6, D)
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3, [1] * 1 + [0] * 5]).bool()
    y, s = adapter(x, mask), adapter.last_states
    # Padded positions: output == input, states == 0.
    torch.testing.assert_close(y[~mask], x[~mask], rtol=0, atol=0)
    assert torch.count_nonzero(s[~mask]) == 0
    assert not torch.allclose(y[mask], x[mask])

    x2 = x.clone()
    x2[~mask] = torch.randn(int((~mask).sum()), D) * 10
    y2, s2 = adapter(x2, mask), adapter.last_states
    torch.testing.assert_close(y2[mask], y[mask])
    torch.testing.assert_close(s2[mask], s[mask])

    # Every row equals the same row run alone, unpadded: the backward direction
    # must start at the last valid step, not at the padding, and a row's valid
    # steps must not be cut short by another row's mask (causality protects
    # neither: for a one-directional adapter only the masks do).
    for row, n in enumerate(mask.sum(1).tolist()):
        torch.testing.assert_close(adapter(x[row:row + 1, :n]), y[row:row + 1, :n])
        torch.testing.assert_close(adapter.last_states, s[row:row + 1, :n])


def test_all_padding_row_passes_through():
    adapter = _adapter()
    x = torch.randn(2, 4, D)
    mask = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]]).bool()
    y = adapter(x, mask)
    torch.testing.assert_close(y[1], x[1], rtol=0, atol=0)
    assert torch.count_nonzero(adapter.last_states[1]) == 0


def test_mask_validation():
    adapter = _adapter()
    x = torch.randn(2, 4, D)
    with pytest.raises(ValueError, match='right-padded'):
        adapter(x, torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]]).bool())
    with pytest.raises(ValueError, match='bool'):
        adapter(x, torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match='does not match'):
        adapter(x, torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match='rnn_type'):
        ReadAdapter(D, rnn_type='transformer')


def test_gradients_reach_every_adapter_parameter():
    adapter = ReadAdapter(D, hidden_dim=R, bidirectional=True)
    x = torch.randn(2, 5, D)
    mask = torch.tensor([[1] * 5, [1] * 2 + [0] * 3]).bool()
    out = adapter(x, mask)
    (out.square().sum() + adapter.last_states.square().sum()).backward()
    for name, p in adapter.named_parameters():
        assert p.grad is not None, name
        assert torch.count_nonzero(p.grad) > 0, name


# ---------------------------------------------------------------- injection

def _transformer(seed=0, layers=3, ls_init_value=None):
    torch.manual_seed(seed)
    return Transformer(D, layers, heads=2, mlp_ratio=2.0, ls_init_value=ls_init_value).eval()


def test_inject_keeps_names_and_matches_at_step0():
    tr = _transformer()
    keys = set(tr.state_dict())
    x = torch.randn(2, 5, D)
    ref = tr(x)
    adapters = inject_read_adapters(tr.resblocks, [0, -1], dict(hidden_dim=R), D)
    assert len(adapters) == 2
    assert isinstance(tr.resblocks[0], ReadResidualAttentionBlock)
    assert type(tr.resblocks[1]) is ResidualAttentionBlock
    assert tr.resblocks[2].read_adapter is adapters[1]
    new_keys = set(tr.state_dict())
    assert keys < new_keys
    assert all('.read_adapter.' in k for k in new_keys - keys)
    with read_context(tr.resblocks, ReadSequenceContext()) as ctx:
        out = tr(x)
    torch.testing.assert_close(out, ref)
    assert [s.shape for s in ctx.states] == [(2, 5, R)] * 2


def test_inject_errors():
    tr = _transformer()
    with pytest.raises(IndexError, match=r'index 3 .*depth 3'):
        inject_read_adapters(tr.resblocks, [3], {}, D)
    with pytest.raises(IndexError, match=r'index -4 .*depth 3'):
        inject_read_adapters(tr.resblocks, [-4], {}, D)
    with pytest.raises(ValueError, match='twice'):
        inject_read_adapters(tr.resblocks, [2, -1], {}, D)
    inject_read_adapters(tr.resblocks, [1], {}, D)
    with pytest.raises(ValueError, match='already'):
        inject_read_adapters(tr.resblocks, [1], {}, D)


def test_adapted_block_needs_context_and_context_is_cleared():
    tr = _transformer()
    inject_read_adapters(tr.resblocks, [-1], dict(hidden_dim=R), D)
    x = torch.randn(1, 4, D)
    with pytest.raises(RuntimeError, match='ReadSequenceContext'):
        tr(x)
    with pytest.raises(ZeroDivisionError):
        with read_context(tr.resblocks, ReadSequenceContext()):
            1 / 0
    assert tr.resblocks[-1].read_context is None


def test_adapter_sits_after_ls2_on_the_ffn_branch():
    tr = _transformer(layers=1, ls_init_value=0.1)
    block = tr.resblocks[0]
    torch.nn.init.normal_(block.ls_2.gamma)
    inject_read_adapters(tr.resblocks, [0], dict(hidden_dim=R), D)
    seen = {}
    block.read_adapter.register_forward_hook(
        lambda m, args, out: seen.update(inp=args[0], out=out))
    x = torch.randn(2, 4, D)
    with read_context(tr.resblocks, ReadSequenceContext()):
        y = tr(x)
    h = x + block.ls_1(block.attention(block.ln_1(x)))
    torch.testing.assert_close(seen['inp'], block.ls_2(block.mlp(block.ln_2(h))))
    torch.testing.assert_close(y, h + seen['out'])


def test_video_layout_tokens_and_cls():
    """(B*F, N, D) block input: recurrence over frames, per token or CLS only."""
    b, f, n = 2, 3, 4
    x = torch.randn(b * f, n, D)
    for cls_only in (False, True):
        tr = _transformer(layers=1)
        inject_read_adapters(tr.resblocks, [0], dict(hidden_dim=R), D)
        nn.init.normal_(tr.resblocks[0].read_adapter.up.weight)
        ctx = ReadSequenceContext(num_frames=f, cls_only=cls_only)
        with read_context(tr.resblocks, ctx):
            y = tr(x)
        assert ctx.states[0].shape == (b, f, R)
        x2 = x.clone()
        x2[f + 1] += torch.randn(n, D)  # sample 1, frame 1 (not a constant: LayerNorm)
        with read_context(tr.resblocks, ReadSequenceContext(num_frames=f, cls_only=cls_only)):
            y2 = tr(x2)
        y, y2 = y.reshape(b, f, n, D), y2.reshape(b, f, n, D)
        torch.testing.assert_close(y2[0], y[0], rtol=0, atol=0)  # other sample
        torch.testing.assert_close(y2[1, 0], y[1, 0], rtol=0, atol=0)  # earlier frame
        assert not torch.allclose(y2[1, 2, 0], y[1, 2, 0])  # later frame, CLS
        if cls_only:
            # Later frames' patch tokens only change through their own input,
            # which is untouched: no adapter on non-CLS tokens.
            torch.testing.assert_close(y2[1, 2, 1:], y[1, 2, 1:], rtol=0, atol=0)
        else:
            assert not torch.allclose(y2[1, 2, 1:], y[1, 2, 1:])
