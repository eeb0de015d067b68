"""Visual prompt tuning (VPT, Jia et al., ECCV 2022) in a CLIP vision tower.

Learnable tokens join every frame's sequence right after its prefix tokens (CLS), so a frame
reads ``[CLS, prompts, patches]``:

- shallow: one set of prompts, inserted at the input of the first chosen block (block 0 by
  default), carried through every later block;
- deep: a fresh set at every chosen block (default all): the first chosen block inserts, each
  later one replaces the prompt tokens the previous block produced.

The inserting block raises ``layout.num_prefix_tokens`` by the number of prompts, so later
sites that need the patch grid (ST-Adapter) skip the prompts. The CLS token pools, so the
tower's pool must take it (``pool_type == 'tok'``).
"""
from typing import Optional

import torch
import torch.nn as nn

from mmvpeft.registry import MODELS
from .base import BasePEFTMethod
from .layout import SequenceLayout

_AUX_KEY = 'visual_prompt_start'


class PromptTokens(nn.Module):
    """The prompts of one block (``block.visual_prompt``), handler of its ``pre_block``.

    Args:
        num_tokens (int): prompts per frame, n.
        dim (int): width D.
        insert (bool): insert the prompts (first chosen block) or replace the ones already
            in the sequence (later blocks of deep VPT).
        init_std (float): std of the normal init.
    """

    def __init__(self, num_tokens: int, dim: int, insert: bool, init_std: float = 0.02):
        super().__init__()
        self.insert = insert
        self.prompts = nn.Parameter(torch.empty(num_tokens, dim))
        nn.init.normal_(self.prompts, std=init_std)

    def pre_block(self, x: torch.Tensor, layout: Optional[SequenceLayout]) -> torch.Tensor:
        """(B*F, N, D) -> (B*F, N + n, D) when inserting, else (B*F, N, D).

        The layout must be the one of this forward: inserting raises its
        ``num_prefix_tokens`` and records where the prompts start in ``layout.aux``.
        """
        if layout is None or not layout.is_video:
            raise RuntimeError('a visual-prompt block needs the video layout; run it '
                               'through CLIPVisionBackbone')
        n = self.prompts.shape[0]
        prompts = self.prompts.to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)
        if self.insert:
            if _AUX_KEY in layout.aux:
                raise RuntimeError('visual prompts were already inserted in this forward '
                                   '(is a SequenceLayout reused across forwards?)')
            start = layout.num_prefix_tokens
            layout.aux[_AUX_KEY] = start
            layout.num_prefix_tokens = start + n
            return torch.cat([x[:, :start], prompts, x[:, start:]], dim=1)
        if _AUX_KEY not in layout.aux:
            raise RuntimeError('deep visual prompts: no block inserted prompts before this one')
        start = layout.aux[_AUX_KEY]
        return torch.cat([x[:, :start], prompts, x[:, start + n:]], dim=1)

    def extra_repr(self) -> str:
        return f'num_tokens={self.prompts.shape[0]}, insert={self.insert}'


@MODELS.register_module()
class VisualPrompt(BasePEFTMethod):
    """VPT (Jia et al., "Visual Prompt Tuning", ECCV 2022), shallow or deep, applied to
    every frame of a CLIP vision tower.

    Args:
        num_tokens (int): prompts per frame. Defaults to 8.
        deep (bool): a fresh set of prompts at every chosen block (VPT-deep) instead of one
            set at the input of the first chosen block (VPT-shallow). Defaults to False.
        layers: chosen blocks; ``None`` (default) = block 0 for shallow, every block for deep.
            Shallow takes exactly one block.
        init_std (float): std of the normal prompt init. Defaults to 0.02.

    Each chosen block gets ``block.visual_prompt`` (:class:`PromptTokens`) at ``pre_block``.
    """
    towers = ('vision', )
    incompatible = ('TokenMixing', )
    incompatible_reason = {'TokenMixing': 'prompt tokens break the [CLS, patches] frame '
                           'layout token mixing builds its key set from'}

    def __init__(self, num_tokens: int = 8, deep: bool = False, layers=None,
                 init_std: float = 0.02):
        if layers is None and not deep:
            layers = (0, )
        super().__init__(layers)
        if not isinstance(num_tokens, int) or num_tokens < 1:
            raise ValueError(f'num_tokens must be a positive int, got {num_tokens!r}')
        self.num_tokens, self.deep, self.init_std = num_tokens, deep, init_std

    def apply(self, tower: nn.Module) -> None:
        pool = getattr(tower, 'pool_type', 'tok')
        if pool != 'tok':
            raise ValueError(f"{self.name} needs a tower that pools the CLS token "
                             f"(pool_type='tok'); this tower pools with {pool!r}, which "
                             'would average the prompts into the output')
        indices = self.blocks_of(tower)
        if not self.deep and len(indices) != 1:
            raise ValueError(f'shallow {self.name} inserts prompts at one block; got layers '
                             f'{self.layers} (use deep=True for prompts at several blocks)')
        for j, i in enumerate(indices):
            self.add(tower, i, ('pre_block', ), 'visual_prompt',
                     PromptTokens(self.num_tokens, tower.width, insert=j == 0,
                                  init_std=self.init_std))

    def __repr__(self) -> str:
        return (f'{self.name}(num_tokens={self.num_tokens}, deep={self.deep}, '
                f'layers={self.block_indices or self.layers})')
