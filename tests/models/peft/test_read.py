"""READ: the ReadAdapter module and the READ method on open_clip blocks."""
import pytest
import torch
import torch.nn as nn
from open_clip.transformer import ResidualAttentionBlock

from mmvpeft.models.peft import READ, PEFTBlock, ReadAdapter, SequenceLayout, peft_context
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


# ---------------------------------------------------------------- the READ method

def _read(layers, **kwargs):
    return dict(type='READ', layers=layers, hidden_dim=R, **kwargs)


def test_read_keeps_names_and_matches_at_step0(make_tower):
    ref_tower = make_tower(width=D)
    keys = set(ref_tower.state_dict())
    x = torch.randn(2, 5, D)
    # no_grad on both sides: with grad on, only the adapted tower's MHA leaves PyTorch's
    # fused inference path, which rounds differently (~1e-7).
    with torch.no_grad():
        ref = ref_tower(x)
    tower = make_tower([_read([0, -1])], width=D)
    blocks = tower.blocks()
    assert isinstance(blocks[0], PEFTBlock) and isinstance(blocks[2], PEFTBlock)
    assert type(blocks[1]) is ResidualAttentionBlock
    assert isinstance(tower.methods[0], READ)
    new_keys = set(tower.state_dict())
    assert keys < new_keys
    assert all('.read_adapter.' in k for k in new_keys - keys)
    layout = SequenceLayout(batch_size=2)
    with torch.no_grad():
        out = tower(x, layout)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    assert [s.shape for s in layout.aux['read_states_raw']] == [(2, 5, R)] * 2
    assert tower.methods[0].outputs(layout)['read_states'] is layout.aux['read_states_raw'][-1]


def test_read_layer_errors(make_tower):
    with pytest.raises(IndexError, match=r'index 3 .*depth 3'):
        make_tower([_read([3])], width=D)
    with pytest.raises(IndexError, match=r'index -4 .*depth 3'):
        make_tower([_read([-4])], width=D)
    with pytest.raises(ValueError, match='twice'):
        make_tower([_read([2, -1])], width=D)
    with pytest.raises(ValueError, match="already has a submodule named 'read_adapter'"):
        make_tower([_read([1]), _read([1])], width=D)


def test_adapted_block_needs_layout_and_layout_is_cleared(make_tower):
    tower = make_tower([_read([-1])], width=D)
    x = torch.randn(1, 4, D)
    with pytest.raises(RuntimeError, match='SequenceLayout'):
        tower.transformer(x)
    with pytest.raises(ZeroDivisionError):
        with peft_context(tower.blocks(), SequenceLayout(batch_size=1)):
            1 / 0
    assert tower.blocks()[-1].peft_layout is None


def test_adapter_sits_after_ls2_on_the_ffn_branch(make_tower):
    tower = make_tower([_read([0])], width=D, layers=1, ls_init_value=0.1)
    block = tower.blocks()[0]
    torch.nn.init.normal_(block.ls_2.gamma)
    seen = {}
    block.read_adapter.register_forward_hook(
        lambda m, args, out: seen.update(inp=args[0], out=out))
    x = torch.randn(2, 4, D)
    y = tower(x)
    h = x + block.ls_1(block.attention(block.ln_1(x)))
    torch.testing.assert_close(seen['inp'], block.ls_2(block.mlp(block.ln_2(h))))
    torch.testing.assert_close(y, h + seen['out'])


def test_video_layout_tokens_and_cls(make_tower):
    """(B*F, N, D) block input: recurrence over frames, per token or CLS only."""
    b, f, n = 2, 3, 4
    x = torch.randn(b * f, n, D)
    for mode in ('tokens', 'cls'):
        tower = make_tower([_read([0], mode=mode)], width=D, layers=1, kind='vision')
        nn.init.normal_(tower.blocks()[0].read_adapter.up.weight)
        layout = SequenceLayout(batch_size=b, num_frames=f, num_prefix_tokens=1)
        y = tower(x, layout)
        assert layout.aux['read_states_raw'][0].shape == (b, f, R)
        x2 = x.clone()
        x2[f + 1] += torch.randn(n, D)  # sample 1, frame 1 (not a constant: LayerNorm)
        y2 = tower(x2, SequenceLayout(batch_size=b, num_frames=f, num_prefix_tokens=1))
        y, y2 = y.reshape(b, f, n, D), y2.reshape(b, f, n, D)
        torch.testing.assert_close(y2[0], y[0], rtol=0, atol=0)  # other sample
        torch.testing.assert_close(y2[1, 0], y[1, 0], rtol=0, atol=0)  # earlier frame
        assert not torch.allclose(y2[1, 2, 0], y[1, 2, 0])  # later frame, CLS
        if mode == 'cls':
            # Later frames' patch tokens only change through their own input,
            # which is untouched: no adapter on non-CLS tokens.
            torch.testing.assert_close(y2[1, 2, 1:], y[1, 2, 1:], rtol=0, atol=0)
        else:
            assert not torch.allclose(y2[1, 2, 1:], y[1, 2, 1:])


def test_read_states_average_frames_of_a_clip(make_tower):
    b, t, k, n = 2, 3, 2, 4
    tower = make_tower([_read([0])], width=D, layers=1, kind='vision')
    layout = SequenceLayout(batch_size=b, num_frames=t * k, frames_per_clip=k,
                            num_prefix_tokens=1)
    tower(torch.randn(b * t * k, n, D), layout)
    raw = layout.aux['read_states_raw'][-1]
    states = tower.methods[0].outputs(layout)['read_states']
    torch.testing.assert_close(states, raw.reshape(b, t, k, R).mean(2), rtol=0, atol=0)
