"""Token Mixing (Liu et al., AAAI 2023): cross-frame keys/values inside a frozen CLIP ViT.

A mixing block keeps its pretrained weights and replaces only what its self-attention looks
at. For a video of T frames with N = 1 + P tokens each, every token of every frame is a query,
and all queries of the video share one key/value set of ``T + P`` tokens:

- the CLS token of every frame (T keys);
- one "mosaic" frame: patch position p taken from frame ``p mod T`` (P keys).

Logits ``q k^T / sqrt(d)`` of keys that are patches of a *different* frame than the query are
multiplied by ``alpha``; CLS keys and same-frame patch keys keep factor 1. No parameter is
added; the mixing blocks are fine-tuned (partial fine-tuning), the rest of the tower is frozen.

The factor depends on the (query frame, key) pair, so it is folded into the keys: queries of
frame t attend to ``K * s_t`` where ``s_t`` is 1 or ``alpha`` per key. One fused
``scaled_dot_product_attention`` call per block then does the rest, with padded frames' CLS
keys masked out; a padded video's mosaic uses ``p mod T_valid``, so a video padded in a batch
computes exactly what it computes alone.
"""
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmvpeft.registry import MODELS
from .base import BasePEFTMethod, pretrained_parameters
from .layout import SequenceLayout


def mosaic_sources(num_patches: int, lengths: torch.Tensor) -> torch.Tensor:
    """Source frame of each mosaic patch position.

    Args:
        num_patches (int): P.
        lengths (Tensor): (B,) valid frames per video.

    Returns:
        Tensor: (B, P) int64, ``p mod lengths[b]``.
    """
    p = torch.arange(num_patches, device=lengths.device)
    return p.unsqueeze(0) % lengths.clamp(min=1).unsqueeze(1)


def token_mixing_attention(block: nn.Module, h: torch.Tensor, num_frames: int,
                           lengths: Optional[torch.Tensor], alpha: float,
                           num_prefix_tokens: int = 1) -> torch.Tensor:
    """Token-mixing self-attention of one block.

    Args:
        block (PEFTBlock): supplies ``project_qkv`` / ``project_out`` / head split, so
            parametrisations of the projections (LoRA) apply here too.
        h (Tensor): (B*T, N, D) ``ln_1`` output; frames of a video consecutive.
        num_frames (int): T.
        lengths (Tensor, optional): (B,) valid frames per video; None = all T.
        alpha (float): factor on cross-frame patch logits.
        num_prefix_tokens (int): must be 1 (CLS, then the patch grid).

    Returns:
        Tensor: (B*T, N, D) attention output (after the output projection).
    """
    if num_prefix_tokens != 1:
        raise ValueError('token mixing needs frames laid out as [CLS, patches]; this tower has '
                         f'{num_prefix_tokens} prefix tokens')
    bt, n, d = h.shape
    t = num_frames
    if bt % t:
        raise ValueError(f'block batch {bt} is not a multiple of num_frames={t}')
    b, p = bt // t, n - 1
    nh = block.num_heads
    dh = d // nh
    padded = lengths is not None and bool((lengths < t).any())
    if lengths is None:
        lengths = torch.full((b, ), t, dtype=torch.long, device=h.device)
    lengths = lengths.to(h.device)

    q, k, v = block.project_qkv(h)  # per-token projections: the plain block's cost
    k, v = k.view(b, t, n, d), v.view(b, t, n, d)
    src = mosaic_sources(p, lengths)  # (B, P)
    index = src.view(b, 1, p, 1).expand(b, 1, p, d)
    patch_k = k[:, :, 1:].gather(1, index).squeeze(1)  # (B, P, D)
    patch_v = v[:, :, 1:].gather(1, index).squeeze(1)
    keys = torch.cat([k[:, :, 0], patch_k], dim=1)  # (B, T+P, D)
    values = torch.cat([v[:, :, 0], patch_v], dim=1)
    s = t + p

    # Per query frame: keys scaled by 1 (CLS keys, same-frame patches) or alpha.
    keys = keys.unsqueeze(1).expand(b, t, s, d)
    if alpha != 1.0:
        frame = torch.arange(t, device=h.device).view(1, t, 1)
        cross = frame != src.unsqueeze(1)  # (B, T, P)
        scale = torch.ones(b, t, s, dtype=h.dtype, device=h.device)
        scale[:, :, t:] = torch.where(cross, torch.full_like(scale[:, :, t:], alpha),
                                      scale[:, :, t:])
        keys = keys * scale.unsqueeze(-1)
    keys = keys.reshape(bt, s, nh, dh).transpose(1, 2)  # (B*T, H, S, dh)
    values = values.unsqueeze(1).expand(b, t, s, d).reshape(bt, s, nh, dh).transpose(1, 2)
    queries = q.view(bt, n, nh, dh).transpose(1, 2)  # (B*T, H, N, dh)

    mask = None
    if padded:  # padded frames' CLS keys never reach any query
        valid = torch.ones(b, s, dtype=torch.bool, device=h.device)
        valid[:, :t] = torch.arange(t, device=h.device).unsqueeze(0) < lengths.unsqueeze(1)
        mask = valid.repeat_interleave(t, dim=0).view(bt, 1, 1, s)
    dropout = block.attn.dropout if block.training else 0.0
    o = F.scaled_dot_product_attention(queries, keys, values, attn_mask=mask,
                                       dropout_p=dropout)
    return block.project_out(o.transpose(1, 2).reshape(bt, n, d))


class TokenMixer(nn.Module):
    """Per-block handler of the ``attention`` site; holds no parameters."""

    def __init__(self, alpha: float):
        super().__init__()
        self.alpha = alpha

    def attention(self, block: nn.Module, h: torch.Tensor, attn_mask: Optional[torch.Tensor],
                  layout: Optional[SequenceLayout]) -> torch.Tensor:
        if layout is None or not layout.is_video:
            raise RuntimeError('a token-mixing block needs the video layout (frames per '
                               'video); run it through CLIPVisionBackbone')
        if attn_mask is not None:
            raise ValueError('token mixing does not take an attention mask')
        lengths = layout.lengths() if layout.mask is not None else None
        return token_mixing_attention(block, h, layout.num_frames, lengths, self.alpha,
                                      layout.num_prefix_tokens)

    def extra_repr(self) -> str:
        return f'alpha={self.alpha}'


@MODELS.register_module()
class TokenMixing(BasePEFTMethod):
    """Token mixing in chosen blocks of a CLIP vision tower (partial fine-tuning).

    Args:
        layers: mixing blocks. Defaults to (-1, ), the last block (the paper's setting).
        alpha (float): factor on logits of cross-frame patch keys; 1.0 disables it.
            Defaults to 0.8.
        train_blocks (bool): fine-tune the pretrained weights of the mixing blocks (the
            paper's "partial fine-tuning"). Defaults to True.
    """
    towers = ('vision', )
    incompatible = ('VisualPrompt', )
    incompatible_reason = {'VisualPrompt': 'prompt tokens break the [CLS, patches] frame '
                           'layout token mixing builds its key set from'}
    default_layers = (-1, )

    def __init__(self, layers=(-1, ), alpha: float = 0.8, train_blocks: bool = True):
        super().__init__(layers)
        if not 0.0 < alpha:
            raise ValueError(f'alpha must be positive, got {alpha}')
        self.alpha = float(alpha)
        self.train_blocks = train_blocks
        self._blocks = []

    def apply(self, tower: nn.Module) -> None:
        self._blocks = []
        for i in self.blocks_of(tower):
            self.add(tower, i, ('attention', ), 'token_mixer', TokenMixer(self.alpha))
            self._blocks.append(tower.blocks()[i])

    def trainable(self, tower: nn.Module):
        if not self.train_blocks:
            return
        for block in self._blocks:
            yield from pretrained_parameters(block)

    def train_modules(self, tower: nn.Module):
        return list(self._blocks) if self.train_blocks else []

    def outputs(self, layout: SequenceLayout) -> Dict[str, torch.Tensor]:
        return {}

