"""Selection methods: BitFit, partial fine-tuning, linear probe, full fine-tuning."""
import pytest
import torch

from mmvpeft.models.backbones.clip_text import CLIPTextBackbone
from mmvpeft.models.backbones.clip_vision import CLIPVisionBackbone
from mmvpeft.models.peft import (BitFit, FullFinetune, LinearProbe, PartialFinetune, PEFTBlock,
                                 SequenceLayout)
from mmvpeft.registry import MODELS

D, HEADS, N = 16, 2, 5
BIASES = ('ln_1.bias', 'attn.in_proj_bias', 'attn.out_proj.bias', 'ln_2.bias', 'mlp.c_fc.bias',
          'mlp.c_proj.bias')


def _block_names(blocks, leaves, prefix='transformer.resblocks'):
    return [f'{prefix}.{i}.{leaf}' for i in blocks for leaf in leaves]


def _causal(length):
    return torch.full((length, length), float('-inf')).triu(1)


def _loss(tower, x):
    target = torch.randn_like(x)
    return lambda: (tower(x, attn_mask=_causal(x.shape[1])) - target).square().mean()


def test_registered():
    for cls in (BitFit, PartialFinetune, LinearProbe, FullFinetune):
        assert MODELS.get(cls.__name__) is cls


def test_selection_attaches_nothing(make_tower):
    ref = make_tower(width=D, heads=HEADS)
    for cfg in (dict(type='BitFit'), dict(type='PartialFinetune'), dict(type='LinearProbe'),
                dict(type='FullFinetune')):
        tower = make_tower([cfg], width=D, heads=HEADS)
        assert set(tower.state_dict()) == set(ref.state_dict())
        assert not any(isinstance(b, PEFTBlock) for b in tower.blocks())


# ------------------------------------------------------------------------- BitFit

@pytest.mark.parametrize('layers, blocks', [(None, (0, 1, 2)), ((-1, ), (2, )), (0, (0, ))])
def test_bitfit_trains_exactly_the_biases(make_tower, check_training_step, layers, blocks):
    tower = make_tower([dict(type='BitFit', layers=layers)], width=D, heads=HEADS)
    check_training_step(tower, _loss(tower, torch.randn(2, N, D)), _block_names(blocks, BIASES))


def test_bitfit_include_norm_adds_layernorm_gains(make_tower, check_training_step):
    tower = make_tower([dict(type='BitFit', layers=1, include_norm=True)], width=D, heads=HEADS)
    check_training_step(tower, _loss(tower, torch.randn(2, N, D)),
                        _block_names((1, ), BIASES + ('ln_1.weight', 'ln_2.weight')))


def test_bitfit_leaves_other_methods_modules_to_them(make_tower, check_training_step):
    tower = make_tower([dict(type='BitFit', layers=-1), dict(type='READ', layers=-1,
                                                               hidden_dim=4)],
                       width=D, heads=HEADS)
    bitfit = tower.methods[0]
    names = {id(p): n for n, p in tower.named_parameters()}
    assert sorted(names[id(p)] for p in bitfit.trainable(tower)) == sorted(
        _block_names((2, ), BIASES))  # not read_adapter.*.bias
    read = [f'transformer.resblocks.2.read_adapter.{n}'
            for n, _ in tower.blocks()[2].read_adapter.named_parameters()]
    x = torch.randn(2, N, D)
    check_training_step(tower, lambda: tower(x, SequenceLayout(batch_size=2),
                                             attn_mask=_causal(N)).square().mean(),
                        _block_names((2, ), BIASES) + read)


def test_bitfit_through_clip_backbones(tiny_clip_cfg, check_training_step):
    """layers=None also trains the biases outside the blocks (ln_pre/ln_post, ln_final)."""
    torch.manual_seed(0)
    imgs = torch.rand(1, 2, 1, 3, 32, 32)
    vb = CLIPVisionBackbone(model_cfg=tiny_clip_cfg(), peft=[dict(type='BitFit')]).train()
    assert not vb.visual.training  # biases need no train mode
    vision_all = _block_names((0, 1), BIASES, 'visual.transformer.resblocks') + [
        'visual.ln_pre.bias', 'visual.ln_post.bias']
    check_training_step(vb, lambda: vb(imgs)['feats'].square().sum(), vision_all)
    vb1 = CLIPVisionBackbone(model_cfg=tiny_clip_cfg(), peft=[dict(type='BitFit', layers=-1)])
    assert sorted(n for n, p in vb1.named_parameters() if p.requires_grad) == sorted(
        _block_names((1, ), BIASES, 'visual.transformer.resblocks'))

    tb = CLIPTextBackbone(model_cfg=tiny_clip_cfg(), peft=[dict(type='BitFit')]).train()
    tokens, mask = torch.randint(1, 990, (2, 5)), torch.ones(2, 5, dtype=torch.bool)
    check_training_step(tb, lambda: tb(tokens, mask)['pooled'].square().sum(),
                        _block_names((0, 1), BIASES) + ['ln_final.bias'])


# ------------------------------------------------------------------ partial / probe / full

def test_partial_finetune_trains_the_chosen_blocks(make_tower, check_training_step):
    tower = make_tower([dict(type='PartialFinetune')], width=D, heads=HEADS)
    method = tower.methods[0]
    assert method.block_indices == [2]
    assert method.train_modules(tower) == [tower.blocks()[2]]
    leaves = [n for n, _ in tower.blocks()[2].named_parameters()]
    check_training_step(tower, _loss(tower, torch.randn(2, N, D)), _block_names((2, ), leaves))
    tower = make_tower([dict(type='PartialFinetune', layers=(0, 1))], width=D, heads=HEADS)
    check_training_step(tower, _loss(tower, torch.randn(2, N, D)),
                        _block_names((0, 1), leaves))


def test_partial_finetune_with_read_on_the_same_block(make_tower, check_training_step):
    tower = make_tower([dict(type='READ', layers=-1, hidden_dim=4),
                        dict(type='PartialFinetune', layers=-1)], width=D, heads=HEADS)
    partial = tower.methods[1]
    names = {id(p): n for n, p in tower.named_parameters()}
    own = sorted(names[id(p)] for p in partial.trainable(tower))
    assert own and not any('read_adapter' in n for n in own)
    x = torch.randn(2, N, D)
    check_training_step(tower, lambda: tower(x, SequenceLayout(batch_size=2),
                                             attn_mask=_causal(N)).square().mean(),
                        [n for n, _ in tower.named_parameters() if '.resblocks.2.' in n])


def test_partial_finetune_through_clip_backbones(tiny_clip_cfg, check_training_step):
    torch.manual_seed(0)
    vb = CLIPVisionBackbone(model_cfg=tiny_clip_cfg(), peft=[dict(type='PartialFinetune')])
    vb.train()  # the fine-tuned block follows train mode, the rest of CLIP stays in eval
    assert vb.blocks()[1].training and not vb.blocks()[0].training
    assert not vb.visual.training and not vb.visual.patch_dropout.training
    imgs = torch.rand(2, 2, 1, 3, 32, 32)
    check_training_step(vb, lambda: vb(imgs)['feats'].square().sum(),
                        [n for n, _ in vb.named_parameters() if '.resblocks.1.' in n])
    vb.eval()
    assert not vb.blocks()[1].training

    tb = CLIPTextBackbone(model_cfg=tiny_clip_cfg(), peft=[dict(type='PartialFinetune',
                                                                 layers=0)]).train()
    tokens, mask = torch.randint(1, 990, (2, 5)), torch.ones(2, 5, dtype=torch.bool)
    check_training_step(tb, lambda: tb(tokens, mask)['pooled'].square().sum(),
                        [n for n, _ in tb.named_parameters() if '.resblocks.0.' in n])


def test_linear_probe_trains_nothing_and_must_be_alone(make_tower, tiny_clip_cfg):
    tower = make_tower([dict(type='LinearProbe')], width=D, heads=HEADS)
    assert not any(p.requires_grad for p in tower.parameters())
    assert LinearProbe.alone
    for peft in ([dict(type='LinearProbe'), dict(type='READ')],
                 [dict(type='LoRA'), dict(type='LinearProbe')]):
        other = peft[1 - [c['type'] for c in peft].index('LinearProbe')]['type']
        with pytest.raises(ValueError, match=f'LinearProbe must be the only PETL method of '
                                             f'its tower; LinearProbe and {other} were both'):
            make_tower(peft, width=D, heads=HEADS)
    vb = CLIPVisionBackbone(model_cfg=tiny_clip_cfg(), peft=[dict(type='LinearProbe')]).train()
    assert not any(p.requires_grad for p in vb.parameters()) and not vb.visual.training
    out = vb(torch.rand(1, 2, 1, 3, 32, 32))
    assert out['feats'].shape == (1, 2, 32) and not out['feats'].requires_grad


def test_full_finetune_trains_everything(make_tower, check_training_step):
    tower = make_tower([dict(type='FullFinetune'), dict(type='READ', layers=-1, hidden_dim=4)],
                       width=D, heads=HEADS)
    assert tower.methods[0].train_modules(tower) == list(tower.children())
    x = torch.randn(2, N, D)
    # Two steps: READ's zero `up` only lets its down/rnn move on step two.
    check_training_step(tower, lambda: tower(x, SequenceLayout(batch_size=2),
                                             attn_mask=_causal(N)).square().mean(),
                        [n for n, _ in tower.named_parameters()])


def test_full_finetune_through_vision_backbone(tiny_clip_cfg, check_training_step):
    torch.manual_seed(0)
    vb = CLIPVisionBackbone(model_cfg=tiny_clip_cfg(patch_dropout=0.5),
                            peft=[dict(type='FullFinetune')])
    vb.train()  # the tower's own train() calls train_modules: no recursion
    assert vb.visual.training and vb.visual.patch_dropout.training
    vb.eval()
    assert not vb.visual.training
    imgs = torch.rand(2, 2, 1, 3, 32, 32)
    check_training_step(vb, lambda: vb(imgs)['feats'].square().sum(),
                        [n for n, _ in vb.named_parameters()], optim='adamw', steps=1, lr=1e-3)
