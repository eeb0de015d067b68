"""A bare open_clip transformer dressed as a PETL tower, for method tests."""
import pytest
import torch
from open_clip.transformer import Transformer
from torch import nn

from mmvpeft.models.peft import SequenceLayout, apply_peft, peft_context


class TinyTower(nn.Module):
    """``Transformer`` + the tower contract (``blocks()``, ``width``, ``tower_kind``)."""

    def __init__(self, width=16, layers=3, heads=2, kind='text', ls_init_value=None,
                 grid_size=None):
        super().__init__()
        self.transformer = Transformer(width, layers, heads=heads, mlp_ratio=2.0,
                                       ls_init_value=ls_init_value)
        self.width, self.tower_kind, self.grid_size = width, kind, grid_size

    def blocks(self):
        return self.transformer.resblocks

    def forward(self, x, layout=None, attn_mask=None):
        layout = layout or SequenceLayout(batch_size=x.shape[0])
        with peft_context(self.blocks(), layout):
            return self.transformer(x, attn_mask=attn_mask)


@pytest.fixture
def make_tower():
    def make(peft=(), frozen=True, seed=0, **kwargs):
        torch.manual_seed(seed)
        tower = TinyTower(**kwargs).eval()
        tower.methods = apply_peft(tower, list(peft), frozen)
        return tower
    return make


def trainable_names(module):
    """Sorted names of the parameters of ``module`` that require grad."""
    return sorted(n for n, p in module.named_parameters() if p.requires_grad)


@pytest.fixture
def check_training_step():
    """Asserts what trains: ``requires_grad`` names, and what a few optimiser steps change.

    ``check(module, loss_fn, expected, steps=2, optim='sgd')`` checks that the parameters
    requiring grad are exactly ``expected`` (names), runs ``steps`` optimiser steps on them
    with ``loss_fn()``, and checks that exactly the ``expected`` state-dict tensors changed
    (every other tensor bit-identical) and that frozen parameters got no gradient. Two steps
    by default: with a zero-initialised up-projection (LoRA B, adapter ``up``) only that
    moves on step one; the others get gradients from step two.
    """
    def check(module, loss_fn, expected, steps=2, optim='sgd', lr=0.1):
        expected = sorted(expected)
        assert trainable_names(module) == expected
        before = {k: v.detach().clone() for k, v in module.state_dict().items()}
        params = [p for p in module.parameters() if p.requires_grad]
        opt = (torch.optim.SGD(params, lr=lr) if optim == 'sgd'
               else torch.optim.AdamW(params, lr=lr, weight_decay=0.0))
        for _ in range(steps):
            opt.zero_grad()
            loss_fn().backward()
            opt.step()
        for name, p in module.named_parameters():
            if not p.requires_grad:
                assert p.grad is None, name
        after = module.state_dict()
        assert set(after) == set(before)
        changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
        assert changed == expected
    return check


@pytest.fixture
def tiny_clip_cfg():
    """``cfg(**vision)``: a tiny random open_clip config (32 px, 2x2 grid, width 64, 2 layers;
    text context 16), as in tests/models/backbones/test_clip_backbones.py."""
    def cfg(**vision):
        return dict(
            embed_dim=32,
            vision_cfg=dict(image_size=32, patch_size=16, width=64, layers=2, head_width=32,
                            mlp_ratio=2.0, **vision),
            text_cfg=dict(context_length=16, vocab_size=1000, width=64, heads=2, layers=2,
                          mlp_ratio=2.0))
    return cfg
