"""Padding is inert whatever it holds: with NaN or inf in padded frames / words, the loss of
the valid positions and every gradient equal those with zero padding, bit for bit (READ
adapter, READ in a tower over frames and over words, token mixing)."""
import pytest
import torch

from mmvpeft.models.peft import SequenceLayout
from mmvpeft.models.peft.read import ReadAdapter

D, HEADS, P = 16, 2, 4
N = 1 + P
PADS = [float('nan'), float('inf'), -float('inf')]


def _grads(module, *inputs):
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}, \
        [x.grad.clone() for x in inputs]


def _assert_same(run, pad):
    loss0, grads0, in0 = run(0.0)
    loss1, grads1, in1 = run(pad)
    assert torch.isfinite(loss0)
    torch.testing.assert_close(loss1, loss0, rtol=0, atol=0)
    assert grads0 and grads1.keys() == grads0.keys()
    for name in grads0:
        torch.testing.assert_close(grads1[name], grads0[name], rtol=0, atol=0, msg=name)
    for g1, g0 in zip(in1, in0):
        torch.testing.assert_close(g1, g0, rtol=0, atol=0)


@pytest.mark.parametrize('pad', PADS)
@pytest.mark.parametrize('rnn_type, bidirectional', [('rnn', False), ('gru', True),
                                                      ('lstm', True)])
def test_read_adapter(pad, rnn_type, bidirectional):
    torch.manual_seed(0)
    adapter = ReadAdapter(in_dim=6, hidden_dim=4, rnn_type=rnn_type,
                          bidirectional=bidirectional).double()
    torch.nn.init.normal_(adapter.up.weight)  # zero-initialised `up` would hide the masking
    torch.nn.init.normal_(adapter.up.bias)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]]).bool()
    base = torch.randn(3, 5, 6, dtype=torch.float64)

    def run(value):
        adapter.zero_grad()
        x = base.masked_fill(~mask[..., None], value).requires_grad_()
        out = adapter(x, mask)
        states = adapter.last_states
        loss = out[mask].square().sum() + states[mask].square().sum()
        loss.backward()
        grads, (gx, ) = _grads(adapter, x)
        return loss.detach(), grads, [gx[mask]]
    _assert_same(run, pad)


def _layout(lengths, t, video=True):
    mask = torch.arange(t)[None] < torch.tensor(lengths)[:, None]
    if video:
        return SequenceLayout(batch_size=len(lengths), num_frames=t, mask=mask,
                              num_prefix_tokens=1, grid_size=(2, 2))
    return SequenceLayout(batch_size=len(lengths), mask=mask)


@pytest.mark.parametrize('pad', PADS)
@pytest.mark.parametrize('peft', [
    [dict(type='TokenMixing', layers=(1, 2), alpha=0.8)],
    [dict(type='READ', layers=(1, 2), hidden_dim=4)],
    [dict(type='TokenMixing', layers=(-1, )), dict(type='READ', layers=(-1, ), hidden_dim=4)],
], ids=['token_mixing', 'read', 'both'])
def test_vision_tower_padded_frames(make_tower, peft, pad):
    tower = make_tower(peft, width=D, heads=HEADS, layers=3, kind='vision',
                       grid_size=(2, 2)).double()
    for m in tower.modules():
        if isinstance(m, ReadAdapter):
            torch.nn.init.normal_(m.up.weight, std=0.5)
    tower.train()
    b, t, lengths = 2, 4, [4, 2]
    torch.manual_seed(1)
    frames = torch.randn(b, t, N, D, dtype=torch.float64)
    valid = torch.arange(t)[None] < torch.tensor(lengths)[:, None]

    def run(value):
        tower.zero_grad()
        x = frames.masked_fill(~valid[:, :, None, None], value).requires_grad_()
        layout = _layout(lengths, t)
        out = tower(x.reshape(b * t, N, D), layout).reshape(b, t, N, D)
        loss = out[valid].square().sum()
        for states in layout.aux.get('read_states_raw', []):
            loss = loss + states.reshape(b, t, -1)[valid].square().sum()
        loss.backward()
        grads, (gx, ) = _grads(tower, x)
        return loss.detach(), grads, [gx[valid]]
    _assert_same(run, pad)


@pytest.mark.parametrize('pad', PADS)
def test_text_tower_padded_words(make_tower, pad):
    tower = make_tower([dict(type='READ', layers=(0, 2), hidden_dim=4)], width=D, heads=HEADS,
                       layers=3, kind='text').double()
    for m in tower.modules():
        if isinstance(m, ReadAdapter):
            torch.nn.init.normal_(m.up.weight, std=0.5)
    b, length, lengths = 2, 6, [6, 3]
    torch.manual_seed(2)
    words = torch.randn(b, length, D, dtype=torch.float64)
    valid = torch.arange(length)[None] < torch.tensor(lengths)[:, None]
    causal = torch.full((length, length), float('-inf'), dtype=torch.float64).triu(1)

    def run(value):
        tower.zero_grad()
        x = words.masked_fill(~valid[..., None], value).requires_grad_()
        layout = _layout(lengths, length, video=False)
        out = tower(x, layout, attn_mask=causal)
        loss = out[valid].square().sum() + sum(
            s[valid].square().sum() for s in layout.aux['read_states_raw'])
        loss.backward()
        grads, (gx, ) = _grads(tower, x)
        return loss.detach(), grads, [gx[valid]]
    _assert_same(run, pad)
