"""LoRA on open_clip blocks: names, step-0 identity, training, merging, and sharing a block."""
import pytest
import torch
import torch.nn as nn

from mmvpeft.models.backbones.clip_text import CLIPTextBackbone
from mmvpeft.models.backbones.clip_vision import CLIPVisionBackbone
from mmvpeft.models.peft import LoRA, SequenceLayout
from mmvpeft.registry import MODELS

D, HEADS, L = 16, 2, 6
PAIRS = ('A', 'B')


def _lora(layers=None, **kwargs):
    return dict(type='LoRA', layers=layers, rank=2, alpha=4, **kwargs)


def _randomize(tower, seed=1):
    """Non-zero B so every LoRA update really acts."""
    torch.manual_seed(seed)
    for b in tower.blocks():
        if hasattr(b, 'lora'):
            for t in b.lora.targets:
                nn.init.normal_(getattr(b.lora, t).B, std=0.5)


def _causal(length, dtype=torch.float32):
    return torch.full((length, length), float('-inf'), dtype=dtype).triu(1)


def _video_layout(b, f):
    return SequenceLayout(batch_size=b, num_frames=f, num_prefix_tokens=1, grid_size=(2, 2))


def _lora_names(blocks, targets):
    return [f'transformer.resblocks.{i}.lora.{t}.{p}' for i in blocks for t in targets
            for p in PAIRS]


def test_registered_and_clip_names_kept(make_tower):
    assert MODELS.get('LoRA') is LoRA
    ref = make_tower(width=D, heads=HEADS)
    tower = make_tower([_lora(layers=(0, -1), targets=('q', 'v', 'fc2'))], width=D, heads=HEADS)
    ref_sd, sd = ref.state_dict(), tower.state_dict()
    # CLIP keys keep their names and values; the extra keys are LoRA's.
    assert set(ref_sd) < set(sd)
    assert all(torch.equal(sd[k], ref_sd[k]) for k in ref_sd)
    assert sorted(set(sd) - set(ref_sd)) == sorted(_lora_names((0, 2), ('q', 'v', 'fc2')))


def test_trainable_by_name(make_tower):
    tower = make_tower([_lora(layers=(0, -1), targets=('q', 'v', 'fc2'))], width=D, heads=HEADS)
    trainable = sorted(n for n, p in tower.named_parameters() if p.requires_grad)
    assert trainable == sorted(_lora_names((0, 2), ('q', 'v', 'fc2')))
    block = tower.blocks()[0]
    assert block.peft_sites == dict(qkv=['lora'], mlp_proj=['lora'])
    assert block.lora.q.A.shape == (2, D) and block.lora.q.B.shape == (D, 2)
    assert block.lora.fc2.A.shape == (2, 2 * D) and block.lora.fc2.B.shape == (D, 2)
    assert tower.methods[0].scale == 2.0 and tower.methods[0].mergeable


@pytest.mark.parametrize('kind', ['vision', 'text'])
@pytest.mark.parametrize('targets', [('q', 'k', 'v', 'o'), ('v', 'fc1', 'fc2')])
def test_step0_equals_frozen_tower(make_tower, kind, targets):
    x = torch.randn(4, L, D)
    layout = _video_layout(2, 2) if kind == 'vision' else SequenceLayout(batch_size=4)
    mask = _causal(L) if kind == 'text' else None
    ref = make_tower(width=D, heads=HEADS, kind=kind)
    tower = make_tower([_lora(targets=targets)], width=D, heads=HEADS, kind=kind)
    with torch.no_grad():
        expected = ref(x, attn_mask=mask)
        out = tower(x, layout, attn_mask=mask)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)


def test_text_causal_mask_is_kept(make_tower):
    """With B != 0, a later word still never changes an earlier one (causal mask applied)."""
    tower = make_tower([_lora(targets=('q', 'k', 'v', 'o', 'fc1'))], width=D, heads=HEADS)
    _randomize(tower)
    x = torch.randn(2, L, D)
    x2 = x.clone()
    x2[:, 4] += torch.randn(D)
    y, y2 = tower(x, attn_mask=_causal(L)), tower(x2, attn_mask=_causal(L))
    torch.testing.assert_close(y2[:, :4], y[:, :4], rtol=0, atol=1e-6)
    assert not torch.allclose(y2[:, 4:], y[:, 4:])


def test_qkv_delta_has_zeros_for_untargeted_slices(make_tower):
    tower = make_tower([_lora(layers=0, targets=('k', ))], width=D, heads=HEADS)
    _randomize(tower)
    lora = tower.blocks()[0].lora
    h = torch.randn(3, 5, D)
    delta = lora.qkv(h)
    assert delta.shape == (3, 5, 3 * D)
    assert torch.count_nonzero(delta[..., :D]) == 0 and torch.count_nonzero(delta[..., 2 * D:]) == 0
    torch.testing.assert_close(delta[..., D:2 * D], 2.0 * h @ lora.k.A.t() @ lora.k.B.t())


@pytest.mark.parametrize('kind', ['vision', 'text'])
def test_one_step_trains_exactly_lora(make_tower, check_training_step, kind):
    tower = make_tower([_lora(layers=(1, 2), targets=('q', 'k', 'v', 'o', 'fc1', 'fc2'))],
                       width=D, heads=HEADS, kind=kind)
    x, target = torch.randn(4, L, D), torch.randn(4, L, D)
    mask = _causal(L) if kind == 'text' else None

    def loss():
        layout = _video_layout(2, 2) if kind == 'vision' else SequenceLayout(batch_size=4)
        return (tower(x, layout, attn_mask=mask) - target).square().mean()

    check_training_step(tower, loss, _lora_names((1, 2), ('q', 'k', 'v', 'o', 'fc1', 'fc2')))


@pytest.mark.parametrize('kind', ['vision', 'text'])
def test_merge_equals_unmerged_float64(make_tower, kind):
    ref = make_tower(width=D, heads=HEADS, kind=kind).double()
    tower = make_tower([_lora(layers=(0, 2), targets=('q', 'v', 'o', 'fc1', 'fc2'))],
                       width=D, heads=HEADS, kind=kind).double()
    _randomize(tower)
    x = torch.randn(4, L, D, dtype=torch.float64)
    mask = _causal(L, torch.float64) if kind == 'text' else None
    layout = (lambda: _video_layout(2, 2)) if kind == 'vision' else (
        lambda: SequenceLayout(batch_size=4))
    with torch.no_grad():
        unmerged = tower(x, layout(), attn_mask=mask)
        assert not torch.allclose(unmerged, ref(x, attn_mask=mask))  # LoRA really acts
    tower.methods[0].merge(tower)
    tower.methods[0].merge(tower)  # a second merge is a no-op
    with torch.no_grad():
        merged = tower(x, layout(), attn_mask=mask)
    torch.testing.assert_close(merged, unmerged, rtol=0, atol=1e-12)
    # Only CLIP keys remain; untargeted weights are untouched, targeted ones moved.
    sd, ref_sd = tower.state_dict(), ref.state_dict()
    assert set(sd) == set(ref_sd)
    assert not any(hasattr(b, 'lora') for b in tower.blocks())
    assert all(not names for b in (tower.blocks()[0], tower.blocks()[2])
               for names in b.peft_sites.values())
    w, w0 = sd['transformer.resblocks.0.attn.in_proj_weight'], \
        ref_sd['transformer.resblocks.0.attn.in_proj_weight']
    assert torch.equal(w[D:2 * D], w0[D:2 * D])  # k untargeted
    assert not torch.equal(w[:D], w0[:D]) and not torch.equal(w[2 * D:], w0[2 * D:])
    for k in ref_sd:
        if '.resblocks.1.' in k or 'bias' in k or 'ln_' in k:
            assert torch.equal(sd[k], ref_sd[k]), k
    assert list(tower.methods[0].trainable(tower)) == []


def test_lora_and_read_on_one_block(make_tower, check_training_step):
    peft = [_lora(layers=-1), dict(type='READ', layers=-1, hidden_dim=4)]
    ref = make_tower(width=D, heads=HEADS)
    tower = make_tower(peft, width=D, heads=HEADS)
    block = tower.blocks()[-1]
    assert block.peft_sites == dict(qkv=['lora'], attn_out=['lora'],
                                    mlp_branch=['read_adapter'])
    x = torch.randn(2, L, D)
    with torch.no_grad():
        torch.testing.assert_close(tower(x, attn_mask=_causal(L)), ref(x, attn_mask=_causal(L)),
                                   rtol=1e-6, atol=1e-6)
    read = [f'transformer.resblocks.2.read_adapter.{n}'
            for n, _ in block.read_adapter.named_parameters()]
    layout = {}

    def loss():
        layout['last'] = SequenceLayout(batch_size=2, mask=torch.ones(2, L, dtype=torch.bool))
        return tower(x, layout['last'], attn_mask=_causal(L)).square().mean()

    check_training_step(tower, loss, _lora_names((2, ), 'qkvo') + read)
    assert layout['last'].aux['read_states_raw'][0].shape == (2, L, 4)


def test_lora_and_token_mixing_on_one_block(make_tower, check_training_step):
    """Token mixing projects through block.project_qkv / project_out, so LoRA acts inside."""
    x = torch.randn(6, 5, D, dtype=torch.float64)  # B=2 videos, T=3 frames, 1 + 2x2 tokens
    mix = dict(type='TokenMixing', layers=-1, alpha=0.8)
    plain = make_tower([mix], width=D, heads=HEADS, kind='vision').double()
    tower = make_tower([mix, _lora(layers=-1)], width=D, heads=HEADS, kind='vision').double()
    with torch.no_grad():
        step0 = tower(x, _video_layout(2, 3))
        torch.testing.assert_close(step0, plain(x, _video_layout(2, 3)), rtol=0, atol=1e-12)
        _randomize(tower)
        adapted = tower(x, _video_layout(2, 3))
        assert (adapted - step0).abs().max() > 1e-3  # the delta changes the mixed output
        # And it is exactly W + scale * B A inside mixing: merging keeps the output.
        tower.methods[1].merge(tower)
        assert tower.blocks()[-1].peft_sites['attention'] == ['token_mixer']
        torch.testing.assert_close(tower(x, _video_layout(2, 3)), adapted, rtol=0, atol=1e-12)

    # Trained together: the mixing block's CLIP weights (TokenMixing) plus LoRA.
    tower = make_tower([mix, _lora(layers=-1)], width=D, heads=HEADS, kind='vision')
    block_params = [f'transformer.resblocks.2.{n}' for n, _ in tower.blocks()[-1].named_parameters()
                    if '.lora.' not in f'.{n}']
    assert block_params and not any('lora' in n for n in block_params)
    xf = x.float()
    check_training_step(tower, lambda: tower(xf, _video_layout(2, 3)).square().mean(),
                        block_params + _lora_names((2, ), 'qkvo'))


def test_build_errors_name_both_methods(make_tower):
    mix = dict(type='TokenMixing', layers=-1)
    with pytest.raises(ValueError, match='TokenMixing and TokenMixing both need the attention '
                                         'of block 2'):
        make_tower([mix, mix], width=D, heads=HEADS, kind='vision')
    with pytest.raises(ValueError, match="already has a submodule named 'lora'"):
        make_tower([_lora(layers=1), _lora(layers=(0, 1))], width=D, heads=HEADS)
    with pytest.raises(ValueError, match='LoRA targets'):
        LoRA(targets=('q', 'gate'))
    with pytest.raises(ValueError, match='LoRA targets'):
        LoRA(targets=())
    with pytest.raises(ValueError, match='rank'):
        LoRA(rank=0)
    with pytest.raises(IndexError, match='LoRA layer index 3'):
        make_tower([_lora(layers=3)], width=D, heads=HEADS)


def test_through_clip_backbones(tiny_clip_cfg):
    """Real towers: build with peft=[LoRA], forward/backward, merge_peft keeps outputs."""
    torch.manual_seed(0)
    vb = CLIPVisionBackbone(model_cfg=tiny_clip_cfg(), peft=[_lora(targets=tuple('qkvo'))]).train()
    assert vb.visual.training is False  # frozen CLIP stays in eval
    imgs = torch.rand(2, 3, 1, 3, 32, 32)
    out = vb(imgs, torch.tensor([[1, 1, 1], [1, 1, 0]]).bool())
    out['feats'].square().sum().backward()
    lora = {n for n, p in vb.named_parameters() if '.lora.' in n}
    assert {n for n, p in vb.named_parameters() if p.requires_grad} == lora and len(lora) == 16
    assert all(p.grad is not None for n, p in vb.named_parameters() if n.endswith('.B'))
    assert all(p.grad is None for n, p in vb.named_parameters() if n not in lora)
    vb.eval()
    _randomize_backbone(vb)
    with torch.no_grad():
        before = vb(imgs)['feats']
        vb.merge_peft()
        torch.testing.assert_close(vb(imgs)['feats'], before, rtol=1e-5, atol=1e-5)
    assert not any('.lora.' in k for k in vb.state_dict())

    tb = CLIPTextBackbone(model_cfg=tiny_clip_cfg(), peft=[_lora(targets=('v', 'fc1'))]).train()
    tokens = torch.randint(1, 990, (2, 6))
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3]).bool()
    tokens[0, 5], tokens[1, 2] = 990, 990
    out = tb(tokens, mask)
    out['pooled'].square().sum().backward()
    assert {n for n, p in tb.named_parameters() if p.requires_grad} == {
        n for n, _ in tb.named_parameters() if '.lora.' in n}
    tb.eval()
    _randomize_backbone(tb)
    with torch.no_grad():
        before = tb(tokens, mask)['pooled']
        tb.merge_peft()
        torch.testing.assert_close(tb(tokens, mask)['pooled'], before, rtol=1e-5, atol=1e-5)


def _randomize_backbone(backbone):
    torch.manual_seed(1)
    for b in backbone.blocks():
        for t in b.lora.targets:
            nn.init.normal_(getattr(b.lora, t).B, std=0.2)
