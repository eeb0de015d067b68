"""LoRA (Hu et al., ICLR 2022): low-rank updates of a frozen block's linear projections.

For a pretrained projection ``y = W x + b`` (W: out x in), LoRA learns ``A`` (r x in) and ``B``
(out x r) and computes ``y = W x + b + (alpha / r) * B A dropout(x)``. ``B`` starts at zero,
so a freshly adapted tower computes exactly what the frozen tower computes.

Targets in an open_clip block:

- ``'q'``, ``'k'``, ``'v'``: the three slices of the packed ``attn.in_proj_weight`` (3D x D),
  through the block's ``qkv`` site (the delta is (.., 3D) with zeros for untargeted slices);
- ``'o'``: ``attn.out_proj`` (``attn_out`` site);
- ``'fc1'``, ``'fc2'``: ``mlp.c_fc`` / ``mlp.c_proj`` (``mlp_fc`` / ``mlp_proj`` sites).

The LoRA parameters live in ``block.lora`` (``lora.q.A``, ``lora.q.B``, ...), so every CLIP
parameter keeps its name. Attention owners that go through ``block.project_qkv`` /
``project_out`` (token mixing) see the LoRA deltas too. :meth:`LoRA.merge` folds
``scale * B A`` into the pretrained weights for inference and removes the modules.
"""
import math
from typing import Dict, Sequence

import torch
import torch.nn as nn

from mmvpeft.registry import MODELS
from .base import BasePEFTMethod
from .block import detach

TARGETS = ('q', 'k', 'v', 'o', 'fc1', 'fc2')
_QKV = ('q', 'k', 'v')


class LoRAPair(nn.Module):
    """One low-rank update ``scale * B A`` of a linear map ``in_dim -> out_dim``.

    Args:
        in_dim (int): input width.
        out_dim (int): output width.
        rank (int): r.
        scale (float): alpha / r.
        dropout (float): dropout on the input of ``A``.
    """

    def __init__(self, in_dim: int, out_dim: int, rank: int, scale: float,
                 dropout: float = 0.0):
        super().__init__()
        self.scale = scale
        self.A = nn.Parameter(torch.empty(rank, in_dim))
        self.B = nn.Parameter(torch.zeros(out_dim, rank))  # zero: step 0 = frozen model
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # as nn.Linear (and HF peft)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(.., in_dim) -> (.., out_dim) delta."""
        return (self.dropout(x) @ self.A.t() @ self.B.t()) * self.scale

    def delta_weight(self) -> torch.Tensor:
        """(out_dim, in_dim) ``scale * B A``, the update of the pretrained weight."""
        return (self.B @ self.A) * self.scale

    def extra_repr(self) -> str:
        return (f'in_dim={self.A.shape[1]}, out_dim={self.B.shape[0]}, rank={self.A.shape[0]}, '
                f'scale={self.scale}')


class LoRABlock(nn.Module):
    """The LoRA updates of one block (``block.lora``), handler of its projection sites.

    Args:
        dim (int): block width D.
        mlp_dim (int): MLP hidden width (``c_fc`` output).
        targets (Sequence[str]): subset of :data:`TARGETS`.
        rank, scale, dropout: :class:`LoRAPair` options.
    """

    def __init__(self, dim: int, mlp_dim: int, targets: Sequence[str], rank: int,
                 scale: float, dropout: float = 0.0):
        super().__init__()
        self.dim, self.targets = dim, tuple(targets)
        shapes = dict(q=(dim, dim), k=(dim, dim), v=(dim, dim), o=(dim, dim),
                      fc1=(dim, mlp_dim), fc2=(mlp_dim, dim))
        for t in self.targets:
            setattr(self, t, LoRAPair(*shapes[t], rank=rank, scale=scale, dropout=dropout))

    def qkv(self, h: torch.Tensor) -> torch.Tensor:
        """(.., D) ln_1 output -> (.., 3D) delta of the packed q, k, v projection."""
        zeros = None
        parts = []
        for t in _QKV:
            if t in self.targets:
                parts.append(getattr(self, t)(h))
            else:
                if zeros is None:
                    zeros = h.new_zeros(*h.shape[:-1], self.dim)
                parts.append(zeros)
        return torch.cat(parts, dim=-1)

    def attn_out(self, o: torch.Tensor) -> torch.Tensor:
        """(.., D) merged heads -> (.., D) delta of ``out_proj``."""
        return self.o(o)

    def mlp_fc(self, h: torch.Tensor) -> torch.Tensor:
        """(.., D) ln_2 output -> (.., mlp_dim) delta of ``c_fc``."""
        return self.fc1(h)

    def mlp_proj(self, z: torch.Tensor) -> torch.Tensor:
        """(.., mlp_dim) activation -> (.., D) delta of ``c_proj``."""
        return self.fc2(z)


@MODELS.register_module()
class LoRA(BasePEFTMethod):
    """LoRA (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022)
    on the attention (and optionally MLP) projections of a vision or text tower.

    Args:
        layers: blocks to adapt; ``None`` (default) = every block.
        rank (int): r. Defaults to 4.
        alpha (float): the update is scaled by ``alpha / rank``. Defaults to 8.
        dropout (float): dropout on the input of ``A``. Defaults to 0.
        targets (Sequence[str]): projections to adapt, from ``'q', 'k', 'v', 'o'`` (attention)
            and ``'fc1', 'fc2'`` (MLP). Defaults to ``('q', 'k', 'v', 'o')``.

    Each adapted block gets ``block.lora`` (:class:`LoRABlock`); ``mergeable`` is True.
    """
    mergeable = True

    def __init__(self, layers=None, rank: int = 4, alpha: float = 8.0, dropout: float = 0.0,
                 targets: Sequence[str] = ('q', 'k', 'v', 'o')):
        super().__init__(layers)
        if isinstance(targets, str):
            targets = (targets, )
        bad = [t for t in targets if t not in TARGETS]
        if bad or not targets or len(set(targets)) != len(targets):
            raise ValueError(f'LoRA targets must be distinct names from {TARGETS}, got '
                             f'{tuple(targets)}')
        if not isinstance(rank, int) or rank < 1:
            raise ValueError(f'LoRA rank must be a positive int, got {rank!r}')
        self.rank, self.alpha, self.dropout = rank, float(alpha), float(dropout)
        self.targets = tuple(t for t in TARGETS if t in targets)  # canonical order
        self.merged = False

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def sites(self) -> tuple:
        t = self.targets
        return tuple(site for site, on in (('qkv', any(x in t for x in _QKV)),
                                           ('attn_out', 'o' in t), ('mlp_fc', 'fc1' in t),
                                           ('mlp_proj', 'fc2' in t)) if on)

    def apply(self, tower: nn.Module) -> None:
        for i in self.blocks_of(tower):
            block = tower.blocks()[i]
            self.add(tower, i, self.sites(), 'lora',
                     LoRABlock(tower.width, block.mlp.c_fc.out_features, self.targets,
                               self.rank, self.scale, self.dropout))

    @torch.no_grad()
    def merge(self, tower: nn.Module) -> None:
        """Adds ``scale * B A`` to the pretrained weights and removes the LoRA modules.

        The tower then computes what it computed with LoRA (up to rounding), through the
        plain open_clip path, and has exactly the CLIP parameters. Inference only: merged
        weights are pretrained tensors, so a frozen tower no longer trains them.
        """
        if self.merged:
            return
        for i in self.block_indices:
            block = tower.blocks()[i]
            lora = block.lora
            d = lora.dim
            for j, t in enumerate(_QKV):
                if t in lora.targets:
                    block.attn.in_proj_weight[j * d:(j + 1) * d] += getattr(lora, t).delta_weight()
            weights: Dict[str, nn.Parameter] = dict(
                o=block.attn.out_proj.weight, fc1=block.mlp.c_fc.weight,
                fc2=block.mlp.c_proj.weight)
            for t, w in weights.items():
                if t in lora.targets:
                    w += getattr(lora, t).delta_weight()
            detach(block, 'lora')
        self.added = []
        self.merged = True

    def __repr__(self) -> str:
        return (f'{self.name}(layers={self.block_indices or self.layers}, rank={self.rank}, '
                f'alpha={self.alpha}, targets={self.targets})')
