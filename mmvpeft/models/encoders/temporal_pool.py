"""Pool per-frame embeddings into one video embedding (CLIP4Clip's meanP / seqTransf)."""
from typing import Optional

import torch
from torch import nn

from mmvpeft.registry import MODELS

_MODES = ('mean', 'transformer')


def masked_mean(x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean over axis 1 of the valid rows.

    Args:
        x: ``(B, T, E)``.
        mask: ``(B, T)`` bool, True = valid; None = all valid.

    Returns:
        torch.Tensor: ``(B, E)``; zeros for a row without any valid frame.
    """
    if mask is None:
        return x.mean(1)
    w = mask.to(x.dtype).unsqueeze(-1)
    # Select, then sum: padded values, NaN and inf included, never reach the mean or its
    # gradient (multiplying by the mask would give 0 * NaN = NaN).
    x = torch.where(mask.bool().unsqueeze(-1), x, 0.0)
    return x.sum(1) / w.sum(1).clamp(min=1.0)


@MODELS.register_module()
class TemporalPool(nn.Module):
    """Temporal pooling of frame embeddings ``(B, T, E) -> (B, E)``.

    - ``'mean'``: masked mean over valid frames (CLIP4Clip's meanP). No parameters.
    - ``'transformer'``: CLIP4Clip's seqTransf idea. A learned temporal position embedding is
      added, a small pre-norm transformer encoder mixes the frames (padded frames masked out
      as keys), and its output, through a zero-initialised linear projection, is added to
      the input frames before the masked mean::

          y = x + proj(encoder(x + pos, key_padding_mask=~mask));   out = masked_mean(y)

      Because ``proj`` starts at zero the module equals ``'mean'`` exactly at step 0 (the
      frozen CLIP features are not disturbed by a random transformer; CLIP4Clip's own
      residual instead changes the output from the first step). The encoder receives
      gradient once ``proj`` has moved off zero, i.e. from the second optimisation step,
      like the zero-initialised up-projection of an adapter.

    Args:
        mode: ``'mean'`` or ``'transformer'``.
        dim: Embedding size ``E`` (needed for ``'transformer'``).
        num_layers: Encoder layers.
        num_heads: Attention heads; must divide ``dim``.
        max_frames: Size of the position table; longer inputs raise.
        mlp_ratio: Hidden size of the feed-forward layers, as a multiple of ``dim``.
        dropout: Dropout inside the encoder layers.
    """

    def __init__(self,
                 mode: str = 'mean',
                 dim: Optional[int] = None,
                 num_layers: int = 1,
                 num_heads: int = 8,
                 max_frames: int = 32,
                 mlp_ratio: float = 4.0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if mode not in _MODES:
            raise ValueError(f'mode must be one of {_MODES}, got {mode!r}')
        self.mode = mode
        self.dim = dim
        if mode == 'mean':
            return
        if dim is None or dim % num_heads:
            raise ValueError(f"mode='transformer' needs dim divisible by num_heads, got "
                             f'dim={dim}, num_heads={num_heads}')
        self.max_frames = int(max_frames)
        self.pos_embed = nn.Parameter(torch.empty(self.max_frames, dim))
        nn.init.normal_(self.pos_embed, std=0.01)
        layer = nn.TransformerEncoderLayer(dim, num_heads, int(dim * mlp_ratio), dropout,
                                           activation='gelu', batch_first=True,
                                           norm_first=True)
        # enable_nested_tensor would skip padded positions in eval and return zeros there,
        # changing nothing after the masked mean but breaking train/eval parity checks.
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.proj = nn.Linear(dim, dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, frame_embeds: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Pool frames.

        Args:
            frame_embeds: ``(B, T, E)``.
            mask: ``(B, T)`` bool, True = real frame; None = all real. Padded frames never
                influence the result.

        Returns:
            torch.Tensor: ``(B, E)``; zeros for a video without any valid frame.
        """
        if frame_embeds.ndim != 3:
            raise ValueError(f'frame_embeds must be (B, T, E), got {tuple(frame_embeds.shape)}')
        if mask is not None:
            mask = mask.bool()
            if mask.shape != frame_embeds.shape[:2]:
                raise ValueError(f'mask must be (B, T) = {tuple(frame_embeds.shape[:2])}, got '
                                 f'{tuple(mask.shape)}')
        if self.mode == 'mean':
            return masked_mean(frame_embeds, mask)
        t = frame_embeds.shape[1]
        if t > self.max_frames:
            raise ValueError(f'{t} frames exceed max_frames={self.max_frames}')
        x = frame_embeds
        if mask is not None:
            # Zero the padded frames (the residual below) and let a video without any valid
            # frame attend to all its (zeroed) frames instead of producing NaN.
            x = torch.where(mask.unsqueeze(-1), x, 0.0)
            padding = ~mask & mask.any(1, keepdim=True)
        else:
            padding = None
        h = self.encoder(x + self.pos_embed[:t], src_key_padding_mask=padding)
        return masked_mean(x + self.proj(h), mask)

    def extra_repr(self) -> str:
        return f'mode={self.mode!r}, dim={self.dim}'
