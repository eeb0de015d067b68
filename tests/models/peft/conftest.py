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
