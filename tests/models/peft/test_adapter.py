"""Houlsby adapters and ST-Adapter on open_clip blocks."""
import pytest
import torch
import torch.nn as nn

from mmvpeft.models.backbones.clip_text import CLIPTextBackbone
from mmvpeft.models.backbones.clip_vision import CLIPVisionBackbone
from mmvpeft.models.peft import HoulsbyAdapter, SequenceLayout, STAdapter
from mmvpeft.registry import MODELS

D, HEADS, R = 16, 2, 4
N = 1 + 4  # CLS + 2x2 grid
LINEAR = ('down.weight', 'down.bias', 'up.weight', 'up.bias')
ST = ('down.weight', 'down.bias', 'conv.weight', 'conv.bias', 'up.weight', 'up.bias')


def _houlsby(layers=None, **kwargs):
    return dict(type='HoulsbyAdapter', layers=layers, hidden_dim=R, **kwargs)


def _st(layers=None, **kwargs):
    return dict(type='STAdapter', layers=layers, hidden_dim=R, **kwargs)


def _names(blocks, module, params):
    return [f'transformer.resblocks.{i}.{module}.{p}' for i in blocks for p in params]


def _layout(b, f, lengths=None):
    mask = None
    if lengths is not None:
        mask = torch.arange(f)[None] < torch.tensor(lengths)[:, None]
    return SequenceLayout(batch_size=b, num_frames=f, mask=mask, num_prefix_tokens=1,
                          grid_size=(2, 2))


def _vision(make_tower, peft=(), **kwargs):
    kwargs.setdefault('layers', 2)
    return make_tower(list(peft), width=D, heads=HEADS, kind='vision', grid_size=(2, 2),
                      **kwargs)


def _randomize(tower, seed=1):
    torch.manual_seed(seed)
    for m in tower.modules():
        if hasattr(m, 'up') and isinstance(m.up, nn.Linear) and m is not tower:
            nn.init.normal_(m.up.weight, std=0.5)
            nn.init.normal_(m.up.bias, std=0.1)


def _causal(length):
    return torch.full((length, length), float('-inf')).triu(1)


# ------------------------------------------------------------------------ Houlsby

def test_houlsby_registered_names_and_sites(make_tower):
    assert MODELS.get('HoulsbyAdapter') is HoulsbyAdapter
    ref = make_tower(width=D, heads=HEADS)
    tower = make_tower([_houlsby(layers=(0, 2))], width=D, heads=HEADS)
    expected = _names((0, 2), 'houlsby_attn', LINEAR) + _names((0, 2), 'houlsby_mlp', LINEAR)
    assert sorted(set(tower.state_dict()) - set(ref.state_dict())) == sorted(expected)
    assert sorted(n for n, p in tower.named_parameters() if p.requires_grad) == sorted(expected)
    assert tower.blocks()[0].peft_sites == dict(attn_branch=['houlsby_attn'],
                                               mlp_branch=['houlsby_mlp'])
    mlp_only = make_tower([_houlsby(layers=1, positions='mlp', act='relu')], width=D, heads=HEADS)
    assert mlp_only.blocks()[1].peft_sites == dict(mlp_branch=['houlsby_mlp'])
    assert isinstance(mlp_only.blocks()[1].houlsby_mlp.act, nn.ReLU)
    assert mlp_only.blocks()[1].houlsby_mlp.down.out_features == R


@pytest.mark.parametrize('kind', ['vision', 'text'])
def test_houlsby_step0_equals_frozen_tower(make_tower, kind):
    x = torch.randn(4, N, D)
    mask = _causal(N) if kind == 'text' else None
    layout = _layout(2, 2) if kind == 'vision' else SequenceLayout(batch_size=4)
    ref = make_tower(width=D, heads=HEADS, kind=kind)
    tower = make_tower([_houlsby()], width=D, heads=HEADS, kind=kind)
    with torch.no_grad():
        torch.testing.assert_close(tower(x, layout, attn_mask=mask), ref(x, attn_mask=mask),
                                   rtol=0, atol=0)


def test_houlsby_one_step_trains_exactly_the_adapters(make_tower, check_training_step):
    tower = make_tower([_houlsby(layers=(1, 2))], width=D, heads=HEADS)
    x, target = torch.randn(2, N, D), torch.randn(2, N, D)
    check_training_step(
        tower, lambda: (tower(x, attn_mask=_causal(N)) - target).square().mean(),
        _names((1, 2), 'houlsby_attn', LINEAR) + _names((1, 2), 'houlsby_mlp', LINEAR))


def test_houlsby_sits_on_both_branches_after_layer_scale(make_tower):
    tower = make_tower([_houlsby(layers=0)], width=D, heads=HEADS, layers=1, ls_init_value=0.1)
    _randomize(tower)
    block = tower.blocks()[0]
    nn.init.normal_(block.ls_1.gamma)
    nn.init.normal_(block.ls_2.gamma)
    x = torch.randn(2, N, D)
    y = tower(x)
    # x + A(ls_1(attn(ln_1 x))), then + A'(ls_2(mlp(ln_2 .))), each A(a) = a + up(gelu(down a)).
    h = x + block.houlsby_attn(block.ls_1(block.attention(block.ln_1(x))))
    ref = h + block.houlsby_mlp(block.ls_2(block.mlp(block.ln_2(h))))
    torch.testing.assert_close(y, ref)
    a = torch.randn(3, D)
    ad = block.houlsby_attn
    torch.testing.assert_close(ad(a), a + ad.up(nn.functional.gelu(ad.down(a))))


def test_houlsby_shares_the_mlp_branch_with_read(make_tower, check_training_step):
    tower = make_tower([_houlsby(layers=-1), dict(type='READ', layers=-1, hidden_dim=R)],
                       width=D, heads=HEADS)
    block = tower.blocks()[-1]
    assert block.peft_sites['mlp_branch'] == ['houlsby_mlp', 'read_adapter']  # config order
    x = torch.randn(2, N, D)
    read = [f'transformer.resblocks.2.read_adapter.{n}'
            for n, _ in block.read_adapter.named_parameters()]
    check_training_step(
        tower, lambda: tower(x, SequenceLayout(batch_size=2), attn_mask=_causal(N)).square().mean(),
        _names((2, ), 'houlsby_attn', LINEAR) + _names((2, ), 'houlsby_mlp', LINEAR) + read)


def test_houlsby_build_errors(make_tower):
    with pytest.raises(ValueError, match='positions'):
        HoulsbyAdapter(positions=('ffn', ))
    with pytest.raises(ValueError, match='activation'):
        HoulsbyAdapter(act='tanhh')
    with pytest.raises(ValueError, match="already has a submodule named 'houlsby_mlp'"):
        make_tower([_houlsby(layers=0), _houlsby(layers=0, positions='mlp')], width=D,
                   heads=HEADS)


def test_houlsby_through_clip_backbones(tiny_clip_cfg):
    torch.manual_seed(0)
    for backbone, inputs in (
            (CLIPVisionBackbone(model_cfg=tiny_clip_cfg(), peft=[_houlsby()]),
             (torch.rand(2, 2, 1, 3, 32, 32), )),
            (CLIPTextBackbone(model_cfg=tiny_clip_cfg(), peft=[_houlsby(positions='attn')]),
             (torch.randint(1, 990, (2, 5)), torch.ones(2, 5, dtype=torch.bool)))):
        backbone.train()
        out = backbone(*inputs)
        (out['feats'].square().sum()).backward()
        adapted = {n for n, _ in backbone.named_parameters() if '.houlsby_' in n}
        assert adapted and {n for n, p in backbone.named_parameters() if p.requires_grad} == adapted
        # Step 0: only `up` gets a gradient (down sits behind the zero up-projection).
        for n, p in backbone.named_parameters():
            if n.endswith('up.weight'):
                assert torch.count_nonzero(p.grad) > 0, n
            elif n not in adapted:
                assert p.grad is None, n


# --------------------------------------------------------------------- ST-Adapter

def test_st_adapter_registered_names_and_shapes(make_tower):
    assert MODELS.get('STAdapter') is STAdapter
    tower = _vision(make_tower, [_st(layers=-1, kernel_size=(3, 1, 1))])
    assert sorted(n for n, p in tower.named_parameters() if p.requires_grad) == \
        sorted(_names((1, ), 'st_adapter', ST))
    m = tower.blocks()[1].st_adapter
    assert tower.blocks()[1].peft_sites == dict(pre_block=['st_adapter'])
    assert m.conv.groups == R and m.conv.kernel_size == (3, 1, 1) and m.conv.padding == (1, 0, 0)
    assert STAdapter().kernel_size == (3, 1, 1)
    assert STAdapter(kernel_size=3).kernel_size == (3, 3, 3)


def test_st_adapter_step0_equals_frozen_tower(make_tower):
    x = torch.randn(6, N, D)
    ref = _vision(make_tower)
    tower = _vision(make_tower, [_st()])
    with torch.no_grad():
        torch.testing.assert_close(tower(x, _layout(2, 3, [3, 2])), ref(x), rtol=0, atol=0)


def test_st_adapter_one_step_trains_exactly_the_adapters(make_tower, check_training_step):
    tower = _vision(make_tower, [_st()])
    x, target = torch.randn(6, N, D), torch.randn(6, N, D)
    check_training_step(tower, lambda: (tower(x, _layout(2, 3)) - target).square().mean(),
                        _names((0, 1), 'st_adapter', ST))


def test_st_adapter_mixes_neighbouring_frames_only_and_keeps_cls(make_tower):
    tower = _vision(make_tower, [_st(layers=0)], layers=1)
    _randomize(tower)
    m = tower.blocks()[0].st_adapter
    b, f = 2, 5
    x = torch.randn(b * f, N, D)
    y = m.pre_block(x, _layout(b, f))
    torch.testing.assert_close(y[:, 0], x[:, 0], rtol=0, atol=0)  # CLS passes through
    x2 = x.clone()
    x2[2] = torch.randn(N, D)  # video 0, frame 2
    y2 = m.pre_block(x2, _layout(b, f))
    y, y2 = y.view(b, f, N, D), y2.view(b, f, N, D)
    torch.testing.assert_close(y2[1], y[1], rtol=0, atol=0)  # other video
    torch.testing.assert_close(y2[0, [0, 4]], y[0, [0, 4]], rtol=0, atol=0)  # beyond the kernel
    for t in (1, 3):  # temporal neighbours see it, through patches only
        assert not torch.allclose(y2[0, t, 1:], y[0, t, 1:])
        torch.testing.assert_close(y2[0, t, 0], y[0, t, 0], rtol=0, atol=0)


def test_st_adapter_padded_video_equals_the_video_alone(make_tower):
    tower = _vision(make_tower, [_st(kernel_size=(3, 1, 1))])
    _randomize(tower)
    f = 4
    x = torch.randn(2 * f, N, D)
    out = tower(x, _layout(2, f, [4, 2])).view(2, f, N, D)
    junk = x.clone()
    junk[f + 2:] = torch.randn(2, N, D) * 10  # video 1's padded frames
    out_junk = tower(junk, _layout(2, f, [4, 2])).view(2, f, N, D)
    torch.testing.assert_close(out_junk[:, :2], out[:, :2], rtol=0, atol=1e-6)
    torch.testing.assert_close(out_junk[0], out[0], rtol=0, atol=1e-6)
    alone = tower(x[f:f + 2], _layout(1, 2))
    torch.testing.assert_close(out[1, :2], alone, rtol=1e-5, atol=1e-6)
    # Padded frames are left as the adapter found them (zero update there).
    block0 = tower.blocks()[0].st_adapter
    y = block0.pre_block(x, _layout(2, f, [4, 2])).view(2, f, N, D)
    torch.testing.assert_close(y[1, 2:], x.view(2, f, N, D)[1, 2:], rtol=0, atol=0)
    # Without the mask the same padded frames would reach frame 1: the test can fail.
    nomask = tower(junk, _layout(2, f)).view(2, f, N, D)
    assert not torch.allclose(nomask[1, 1], out[1, 1])


def test_st_adapter_errors(make_tower):
    with pytest.raises(ValueError, match='STAdapter does not apply to a text tower'):
        make_tower([_st()], width=D, heads=HEADS, kind='text')
    with pytest.raises(ValueError, match='patch grid'):
        make_tower([_st()], width=D, heads=HEADS, kind='vision')  # no grid_size
    with pytest.raises(ValueError, match='odd'):
        STAdapter(kernel_size=(2, 1, 1))
    tower = _vision(make_tower, [_st(layers=0)], layers=1)
    with pytest.raises(ValueError, match='2x2 patch grid'):
        tower(torch.randn(4, N + 1, D), _layout(2, 2))
    with pytest.raises(RuntimeError, match='video layout'):
        tower(torch.randn(4, N, D), SequenceLayout(batch_size=4))


def test_st_adapter_through_vision_backbone(tiny_clip_cfg):
    torch.manual_seed(0)
    with pytest.raises(ValueError, match='STAdapter does not apply to a text tower'):
        CLIPTextBackbone(model_cfg=tiny_clip_cfg(), peft=[_st()])
    vb = CLIPVisionBackbone(model_cfg=tiny_clip_cfg(), peft=[_st(kernel_size=(3, 1, 1))]).eval()
    _randomize(vb)
    imgs = torch.rand(2, 3, 2, 3, 32, 32)  # B=2, T=3 clips, K=2 frames per clip
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]]).bool()
    out = vb(imgs, mask)
    alone = vb(imgs[1:, :1])
    torch.testing.assert_close(alone['feats'][0], out['feats'][1, :1], rtol=1e-5, atol=1e-5)
    vb.train()
    vb(imgs, mask)['feats'].square().sum().backward()
    st = {n for n, _ in vb.named_parameters() if '.st_adapter.' in n}
    assert len(st) == 2 * len(ST)
    assert {n for n, p in vb.named_parameters() if p.requires_grad} == st
    assert all(p.grad is not None for n, p in vb.named_parameters() if n in st)
    assert all(p.grad is None for n, p in vb.named_parameters() if n not in st)
