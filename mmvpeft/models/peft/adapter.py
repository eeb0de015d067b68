"""Bottleneck adapters: Houlsby (sequential, per sub-layer) and ST-Adapter (spatio-temporal).

Both end in a zero-initialised up-projection, so a freshly adapted tower computes exactly what
the frozen tower computes.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from mmvpeft.registry import MODELS
from .base import BasePEFTMethod
from .layout import SequenceLayout


class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)``, the activation of OpenAI's CLIP."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


_ACTS = {'gelu': nn.GELU, 'relu': nn.ReLU, 'silu': nn.SiLU, 'quick_gelu': QuickGELU,
         'none': nn.Identity}


def build_act(act: Optional[str]) -> nn.Module:
    key = 'none' if act is None else act
    if key not in _ACTS:
        raise ValueError(f'activation must be one of {sorted(_ACTS)} or None, got {act!r}')
    return _ACTS[key]()


class BottleneckAdapter(nn.Module):
    """``x + up(act(down(x)))`` with ``up`` zero-initialised.

    Args:
        dim (int): width D.
        hidden_dim (int): bottleneck width r.
        act (str): activation name (see :data:`_ACTS`).
    """

    def __init__(self, dim: int, hidden_dim: int, act: str = 'gelu'):
        super().__init__()
        self.down = nn.Linear(dim, hidden_dim)
        self.act = build_act(act)
        self.up = nn.Linear(hidden_dim, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(.., D) -> (.., D)."""
        return x + self.up(self.act(self.down(x)))

    # Site handlers: the adapter acts per token, so the layout plays no part (and a decoder
    # may run it on the newest word only, with a key/value cache).
    incremental = True

    def attn_branch(self, a: torch.Tensor, layout: Optional[SequenceLayout]) -> torch.Tensor:
        return self(a)

    def mlp_branch(self, m: torch.Tensor, layout: Optional[SequenceLayout]) -> torch.Tensor:
        return self(m)


@MODELS.register_module()
class HoulsbyAdapter(BasePEFTMethod):
    """Sequential bottleneck adapters (Houlsby et al., "Parameter-Efficient Transfer Learning
    for NLP", ICML 2019).

    One adapter after each chosen sub-layer, inside its residual branch, before the skip
    addition: ``x + adapter(ls_1(attn(ln_1(x))))`` and likewise for the MLP. The adapters are
    ``block.houlsby_attn`` / ``block.houlsby_mlp`` (sites ``attn_branch`` / ``mlp_branch``).

    Args:
        layers: blocks to adapt; ``None`` (default) = every block.
        hidden_dim (int): bottleneck width. Defaults to 64.
        positions (Sequence[str]): ``'attn'`` and/or ``'mlp'``. Defaults to both (the paper).
        act (str): bottleneck activation. Defaults to 'gelu'.
    """
    _SITES = dict(attn='attn_branch', mlp='mlp_branch')

    def __init__(self, layers=None, hidden_dim: int = 64,
                 positions: Sequence[str] = ('attn', 'mlp'), act: str = 'gelu'):
        super().__init__(layers)
        if isinstance(positions, str):
            positions = (positions, )
        if not positions or any(p not in self._SITES for p in positions) \
                or len(set(positions)) != len(positions):
            raise ValueError("HoulsbyAdapter positions must be distinct names from "
                             f"('attn', 'mlp'), got {tuple(positions)}")
        build_act(act)  # fail at build on a bad name
        self.hidden_dim, self.act = hidden_dim, act
        self.positions = tuple(p for p in ('attn', 'mlp') if p in positions)

    def apply(self, tower: nn.Module) -> None:
        for i in self.blocks_of(tower):
            for pos in self.positions:
                self.add(tower, i, (self._SITES[pos], ), f'houlsby_{pos}',
                         BottleneckAdapter(tower.width, self.hidden_dim, self.act))


class STAdapterModule(nn.Module):
    """One ST-Adapter: down-projection, depth-wise 3-D conv over (time, h, w), up-projection.

    Acts on the patch grid of every frame before a block; prefix tokens (CLS, prompts) pass
    through unchanged.

    Args:
        dim (int): width D.
        hidden_dim (int): bottleneck width r (conv channels).
        kernel_size (tuple[int, int, int]): (t, h, w) conv kernel, odd sizes.
        grid_size (tuple[int, int]): the tower's (h, w) patch grid, used when the layout has
            none.
        act (str, optional): activation after the conv; None (default) as the official code.
    """

    def __init__(self, dim: int, hidden_dim: int, kernel_size: Tuple[int, int, int],
                 grid_size: Tuple[int, int], act: Optional[str] = None):
        super().__init__()
        self.grid_size = tuple(grid_size)
        self.down = nn.Linear(dim, hidden_dim)
        self.conv = nn.Conv3d(hidden_dim, hidden_dim, kernel_size,
                              padding=tuple(k // 2 for k in kernel_size), groups=hidden_dim)
        self.act = build_act(act)
        self.up = nn.Linear(hidden_dim, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def pre_block(self, x: torch.Tensor, layout: Optional[SequenceLayout]) -> torch.Tensor:
        """Adapts the patch tokens of every frame with a conv over (time, h, w).

        Args:
            x (Tensor): (B*F, N, D) block input, frames of a video consecutive, N = prefix
                tokens + h*w patches.
            layout (SequenceLayout): the video layout (num_frames, mask, num_prefix_tokens).

        Returns:
            Tensor: (B*F, N, D); prefix tokens and padded frames unchanged.
        """
        if layout is None or not layout.is_video:
            raise RuntimeError('an ST-Adapter block needs the video layout (frames per '
                               'video); run it through CLIPVisionBackbone')
        bf, n, d = x.shape
        f = layout.num_frames
        if bf % f:
            raise ValueError(f'block batch {bf} is not a multiple of num_frames={f}')
        b = bf // f
        gh, gw = layout.grid_size or self.grid_size
        p = layout.num_prefix_tokens
        if n - p != gh * gw:
            raise ValueError(f'ST-Adapter expects {p} prefix tokens + a {gh}x{gw} patch grid '
                             f'per frame, got {n} tokens (patch dropout on?)')
        z = self.down(x[:, p:]).view(b, f, gh, gw, -1)
        frame_mask = None
        if layout.mask is not None:
            # Zero padded frames before the conv: they then look like the conv's own zero
            # padding past the last valid frame, so a padded video equals the video alone.
            frame_mask = layout.mask.to(device=x.device, dtype=x.dtype).view(b, f, 1, 1, 1)
            z = z * frame_mask
        z = self.conv(z.permute(0, 4, 1, 2, 3)).permute(0, 2, 3, 4, 1)  # (B, F, h, w, r)
        delta = self.up(self.act(z))
        if frame_mask is not None:
            delta = delta * frame_mask  # `up` and the conv have biases
        patches = x[:, p:] + delta.reshape(bf, gh * gw, d)
        return torch.cat([x[:, :p], patches], dim=1)


@MODELS.register_module()
class STAdapter(BasePEFTMethod):
    """ST-Adapter (Pan et al., "ST-Adapter: Parameter-Efficient Image-to-Video Transfer
    Learning", NeurIPS 2022) before chosen blocks of a CLIP vision tower.

    ``x_patches + up(act(DWConv3D(down(x_patches))))`` over the (frames, h, w) grid of each
    video, at the ``pre_block`` site (``block.st_adapter``); CLS and other prefix tokens
    (``layout.num_prefix_tokens``, raised by visual prompts) pass through. The paper's
    formula has an activation after the conv; the official code has none (default here).

    Args:
        layers: blocks to adapt; ``None`` (default) = every block (the paper).
        hidden_dim (int): bottleneck width. Defaults to 384 (the paper's ViT-B/16 setting).
        kernel_size (int | tuple[int, int, int]): (t, h, w) depth-wise kernel, odd sizes.
            Defaults to (3, 1, 1) (the paper's ViT setting).
        act (str, optional): activation after the conv. Defaults to None.
    """
    towers = ('vision', )

    def __init__(self, layers=None, hidden_dim: int = 384,
                 kernel_size: Union[int, Sequence[int]] = (3, 1, 1), act: Optional[str] = None):
        super().__init__(layers)
        if isinstance(kernel_size, int):
            kernel_size = (kernel_size, ) * 3
        kernel_size = tuple(kernel_size)
        if len(kernel_size) != 3 or any(not isinstance(k, int) or k < 1 or k % 2 == 0
                                        for k in kernel_size):
            raise ValueError('ST-Adapter kernel_size must be 3 odd positive ints (t, h, w), '
                             f'got {kernel_size}')
        build_act(act)
        self.hidden_dim, self.kernel_size, self.act = hidden_dim, kernel_size, act

    def apply(self, tower: nn.Module) -> None:
        grid = getattr(tower, 'grid_size', None)
        if grid is None:
            raise ValueError(f'{self.name} needs a vision tower with a patch grid '
                             '(tower.grid_size)')
        for i in self.blocks_of(tower):
            self.add(tower, i, ('pre_block', ), 'st_adapter',
                     STAdapterModule(tower.width, self.hidden_dim, self.kernel_size, grid,
                                     self.act))
