"""Visual prompt tuning (shallow / deep) on open_clip blocks, alone and with READ / ST-Adapter."""
import pytest
import torch

from mmvpeft.models.backbones.clip_text import CLIPTextBackbone
from mmvpeft.models.backbones.clip_vision import CLIPVisionBackbone
from mmvpeft.models.peft import SequenceLayout, VisualPrompt, apply_peft
from mmvpeft.registry import MODELS

D, HEADS, NP = 16, 2, 3  # width, heads, prompts per frame
N = 1 + 4  # CLS + 2x2 grid


def _vpt(**kwargs):
    return dict(type='VisualPrompt', num_tokens=NP, **kwargs)


def _layout(b, f, lengths=None):
    mask = None
    if lengths is not None:
        mask = torch.arange(f)[None] < torch.tensor(lengths)[:, None]
    return SequenceLayout(batch_size=b, num_frames=f, mask=mask, num_prefix_tokens=1,
                          grid_size=(2, 2))


def _vision(make_tower, peft=(), **kwargs):
    return make_tower(list(peft), width=D, heads=HEADS, kind='vision', grid_size=(2, 2),
                      **kwargs)


def _prompt_names(blocks):
    return [f'transformer.resblocks.{i}.visual_prompt.prompts' for i in blocks]


def test_registered_defaults_and_names(make_tower):
    assert MODELS.get('VisualPrompt') is VisualPrompt
    ref = _vision(make_tower)
    shallow = _vision(make_tower, [_vpt()])
    deep = _vision(make_tower, [_vpt(deep=True)])
    for tower, blocks in ((shallow, (0, )), (deep, (0, 1, 2))):
        sd = tower.state_dict()
        assert all(torch.equal(sd[k], v) for k, v in ref.state_dict().items())
        assert sorted(set(sd) - set(ref.state_dict())) == _prompt_names(blocks)
        assert sorted(n for n, p in tower.named_parameters() if p.requires_grad) == \
            _prompt_names(blocks)
    assert shallow.blocks()[0].visual_prompt.prompts.shape == (NP, D)
    assert [b.visual_prompt.insert for b in deep.blocks()] == [True, False, False]
    assert VisualPrompt().num_tokens == 8 and VisualPrompt().layers == (0, )
    assert VisualPrompt(deep=True).layers is None


def test_shallow_equals_plain_blocks_on_the_prompted_sequence(make_tower):
    ref = _vision(make_tower)
    tower = _vision(make_tower, [_vpt(layers=1)])
    x = torch.randn(4, N, D)
    layout = _layout(2, 2)
    y = tower(x, layout)
    assert y.shape == (4, N + NP, D)
    assert layout.num_prefix_tokens == 1 + NP
    blocks = ref.blocks()
    h = blocks[0](x)
    prompts = tower.blocks()[1].visual_prompt.prompts.expand(4, -1, -1)
    h = torch.cat([h[:, :1], prompts, h[:, 1:]], dim=1)  # [CLS, prompts, patches]
    expected = blocks[2](blocks[1](h))
    torch.testing.assert_close(y, expected, rtol=0, atol=0)


def test_deep_replaces_the_previous_blocks_prompts(make_tower):
    ref = _vision(make_tower)
    tower = _vision(make_tower, [_vpt(deep=True, layers=(0, 2))])
    x = torch.randn(4, N, D)
    y = tower(x, _layout(2, 2))
    p = [tower.blocks()[i].visual_prompt.prompts.expand(4, -1, -1) if i != 1 else None
         for i in range(3)]
    blocks = ref.blocks()
    h = blocks[1](blocks[0](torch.cat([x[:, :1], p[0], x[:, 1:]], dim=1)))
    h = torch.cat([h[:, :1], p[2], h[:, 1 + NP:]], dim=1)  # block 1's prompt outputs dropped
    torch.testing.assert_close(y, blocks[2](h), rtol=0, atol=0)


@pytest.mark.parametrize('deep', [False, True])
def test_one_step_trains_exactly_the_prompts(make_tower, check_training_step, deep):
    tower = _vision(make_tower, [_vpt(deep=deep)])
    x = torch.randn(4, N, D)
    target = torch.randn(4, D)
    check_training_step(tower, lambda: (tower(x, _layout(2, 2))[:, 0] - target).square().mean(),
                        _prompt_names((0, 1, 2) if deep else (0, )))


def test_prompts_with_read_tokens_mode(make_tower, check_training_step):
    """READ recurs over frames at every token position, prompts included."""
    read = dict(type='READ', layers=(0, -1), hidden_dim=4, mode='tokens')
    tower = _vision(make_tower, [_vpt(deep=True), read])
    x = torch.randn(6, N, D)
    layout = _layout(2, 3, [3, 2])
    y = tower(x, layout)
    assert y.shape == (6, N + NP, D)
    assert [s.shape for s in layout.aux['read_states_raw']] == [(2, 3, 4)] * 2
    read_names = [f'transformer.resblocks.{i}.read_adapter.{n}' for i in (0, 2)
                  for n, _ in tower.blocks()[i].read_adapter.named_parameters()]
    check_training_step(tower, lambda: tower(x, _layout(2, 3, [3, 2]))[:, 0].square().mean(),
                        _prompt_names((0, 1, 2)) + read_names)


@pytest.mark.parametrize('order', ['vpt_first', 'st_first'])
def test_prompts_with_st_adapter_pass_prompts_through(make_tower, check_training_step, order):
    """ST-Adapter reads num_prefix_tokens, so it convolves the patch grid, never the prompts."""
    vpt, st = _vpt(layers=0), dict(type='STAdapter', layers=(0, 1), hidden_dim=4)
    tower = _vision(make_tower, [vpt, st] if order == 'vpt_first' else [st, vpt])
    torch.manual_seed(1)
    seen = []
    for i in (0, 1):
        m = tower.blocks()[i].st_adapter
        torch.nn.init.normal_(m.up.weight)

        def record(x, layout, m=m, orig=m.pre_block):
            out = orig(x, layout)
            seen.append((x, out, layout.num_prefix_tokens))
            return out
        m.pre_block = record
    x = torch.randn(6, N, D)
    tower(x, _layout(2, 3))
    prefix0 = 1 + NP if order == 'vpt_first' else 1
    assert [s[2] for s in seen] == [prefix0, 1 + NP]
    for inp, out, p in seen:
        assert inp.shape[1] == p + 4
        torch.testing.assert_close(out[:, :p], inp[:, :p], rtol=0, atol=0)
        assert not torch.allclose(out[:, p:], inp[:, p:])


def test_build_errors(make_tower):
    with pytest.raises(ValueError, match='VisualPrompt does not apply to a text tower'):
        make_tower([_vpt()], width=D, heads=HEADS, kind='text')
    for peft in ([_vpt(), dict(type='TokenMixing')], [dict(type='TokenMixing'), _vpt()]):
        with pytest.raises(ValueError, match='(VisualPrompt and TokenMixing|TokenMixing and '
                                             'VisualPrompt) cannot be combined') as err:
            _vision(make_tower, peft)
        assert 'prompt tokens' in str(err.value)
    with pytest.raises(ValueError, match='shallow VisualPrompt inserts prompts at one block'):
        _vision(make_tower, [_vpt(layers=(0, 1))])
    with pytest.raises(ValueError, match='num_tokens'):
        VisualPrompt(num_tokens=0)
    tower = _vision(make_tower)
    tower.pool_type = 'avg'
    with pytest.raises(ValueError, match="pool_type='tok'.*'avg'"):
        apply_peft(tower, [_vpt()])


def test_layout_is_per_forward(make_tower):
    tower = _vision(make_tower, [_vpt()])
    layout = _layout(1, 2)
    tower(torch.randn(2, N, D), layout)
    with pytest.raises(RuntimeError, match='reused'):
        tower(torch.randn(2, N, D), layout)


def test_through_vision_backbone(tiny_clip_cfg):
    torch.manual_seed(0)
    with pytest.raises(ValueError, match='VisualPrompt does not apply to a text tower'):
        CLIPTextBackbone(model_cfg=tiny_clip_cfg(), peft=[_vpt()])
    with pytest.raises(ValueError, match="pool_type='tok'"):
        CLIPVisionBackbone(model_cfg=tiny_clip_cfg(pool_type='avg'), peft=[_vpt()])
    peft = [_vpt(deep=True), dict(type='READ', layers=-1, hidden_dim=4)]
    vb = CLIPVisionBackbone(model_cfg=tiny_clip_cfg(), peft=peft).train()
    plain = CLIPVisionBackbone(model_cfg=tiny_clip_cfg()).eval()
    plain.load_state_dict(vb.state_dict(), strict=False)
    imgs = torch.rand(2, 3, 1, 3, 32, 32)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]]).bool()
    out = vb(imgs, mask)
    assert out['feats'].shape == (2, 3, 32) and out['aux']['read_states'].shape == (2, 3, 4)
    assert not torch.allclose(out['feats'], plain(imgs, mask)['feats'])  # prompts act
    out['feats'].square().sum().backward()
    trained = {n for n, p in vb.named_parameters() if p.requires_grad}
    assert {n for n in trained if 'visual_prompt' in n} == {
        f'visual.transformer.resblocks.{i}.visual_prompt.prompts' for i in (0, 1)}
    assert all('visual_prompt' in n or 'read_adapter' in n for n in trained)
    assert all(p.grad is not None and torch.count_nonzero(p.grad) > 0
               for n, p in vb.named_parameters() if 'visual_prompt' in n)
    assert all(p.grad is None for n, p in vb.named_parameters() if n not in trained)
