"""Cross-modal transformer: text self-attention, video self-attention, then video layers that
also attend to the text (video queries, text keys/values)."""
import math
from typing import Optional

import torch
from mmengine.model import BaseModule
from torch import nn

from mmvpeft.models.peft.checkpoint import maybe_checkpoint
from mmvpeft.registry import MODELS


def sinusoidal_positions(length: int, dim: int, device=None) -> torch.Tensor:
    """``(length, dim)`` sine/cosine position table (no length cap, unlike a learned one)."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) *
                     (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[:dim // 2])
    return table


class TransformerLayer(nn.Module):
    """Pre-norm transformer layer with optional cross-attention and READ adapter.

    The adapter sits after the feed-forward sub-layer inside its residual branch, as in
    READ: ``x = x + adapter(ffn(norm(x)), mask)``; a zero-initialised adapter leaves the
    layer unchanged.
    """

    def __init__(self, dim: int, num_heads: int, ffn_ratio: float = 4.0, dropout: float = 0.1,
                 cross_attention: bool = False, adapter: Optional[dict] = None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        if cross_attention:
            self.norm_cross = nn.LayerNorm(dim)
            # A zero key/value lets a clip attend to "nothing": without it softmax forces
            # every clip onto some query word, and unrelated clips look matched.
            self.cross_attn = nn.MultiheadAttention(
                dim, num_heads, dropout=dropout, batch_first=True, add_zero_attn=True)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * ffn_ratio)
        self.ffn = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim))
        self.dropout = nn.Dropout(dropout)
        self.adapter = MODELS.build(dict(adapter, in_dim=dim)) if adapter else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor, memory: torch.Tensor = None,
                memory_mask: torch.Tensor = None) -> torch.Tensor:
        """Args:
            x: ``(B, S, D)``; mask: ``(B, S)`` bool, True = valid (right-padded).
            memory: ``(B, M, D)`` attended by cross-attention; memory_mask: ``(B, M)``.
        Returns: ``(B, S, D)``.
        """
        h = self.norm1(x)
        x = x + self.dropout(self.self_attn(h, h, h, key_padding_mask=~mask,
                                            need_weights=False)[0])
        if hasattr(self, 'cross_attn'):
            h = self.norm_cross(x)
            x = x + self.dropout(self.cross_attn(h, memory, memory, key_padding_mask=~memory_mask,
                                                 need_weights=False)[0])
        h = self.ffn(self.norm2(x))
        if self.adapter is not None:
            h = self.adapter(h, mask)
        return x + self.dropout(h)


@MODELS.register_module()
class CrossModalEncoder(BaseModule):
    """Fuse clip features with query features.

    Args:
        video_dim: input clip feature size.
        text_dim: input token feature size.
        dim: model width.
        num_heads: attention heads.
        num_text_layers: text self-attention layers before fusion. Default 0: on the
            synthetic demo set, one unimodal layer (text or video) before joint fusion kept
            the model from learning the query-clip match (R1@0.5 ~37% vs ~97% without,
            500 steps), for reasons not yet understood; see the README.
        num_video_layers: video self-attention layers before fusion (default 0, as above).
        num_fusion_layers: layers that mix the two modalities.
        fusion: ``'joint'``: self-attention over the concatenated ``[video; text]`` sequence
            (Moment-DETR style: every clip and word attends to all); ``'cross'``: video
            self-attention plus cross-attention from clips to words.
        dropout: dropout in projections and layers.
        adapter: optional READ adapter config (``type='ReadAdapter', hidden_dim=...``)
            inserted in the layers named by ``adapter_in``.
        adapter_in: which layer groups get adapters: subset of ``('text', 'video', 'fusion')``.
        input_norm: ``'batch'``: standardise every input channel over the batch's valid
            clips and words (``BatchNorm1d`` without affine; running statistics at test time)
            before the projections. Features of a frozen random tower share a large common
            part that the per-token LayerNorm keeps, and the query-clip match drowned in it
            (``read_long_demo.py`` at 30 epochs: R1@0.5 41% without, 90% with). Default None.
        grad_checkpointing: recompute each layer's activations in backward instead of keeping
            them (non-reentrant; READ adapters' states keep their first-forward graph, so
            PVLA on ``video_states`` / ``text_states`` is unchanged). Training forwards only.

    Forward returns a dict: ``feats (B, T, dim)``, and when the unimodal layers carry
    adapters, ``video_states (B, T, r)`` / ``text_states (B, L, r)`` of the last such layer
    (for PVLA).
    """

    def __init__(self, video_dim: int, text_dim: int, dim: int = 256, num_heads: int = 8,
                 num_text_layers: int = 0, num_video_layers: int = 0,
                 num_fusion_layers: int = 3, fusion: str = 'joint', dropout: float = 0.1,
                 adapter: Optional[dict] = None, adapter_in=('text', 'video'),
                 grad_checkpointing: bool = False, input_norm: Optional[str] = None,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if input_norm not in (None, 'batch'):
            raise ValueError(f'input_norm must be None or "batch", got {input_norm!r}')
        if fusion not in ('joint', 'cross'):
            raise ValueError(f'fusion must be "joint" or "cross", got {fusion!r}')
        if fusion == 'joint' and adapter and 'fusion' in adapter_in:
            # The joint sequence [video; text] has padding in its middle, and the recurrence
            # needs right-padded sequences of one modality.
            raise ValueError('READ adapters in joint fusion layers are not supported; use '
                             'adapter_in=("text", "video") or fusion="cross"')
        unknown = set(adapter_in) - {'text', 'video', 'fusion'}
        if unknown:
            raise ValueError(f'adapter_in has unknown group(s) {sorted(unknown)}')

        def proj(in_dim):
            return nn.Sequential(nn.LayerNorm(in_dim), nn.Dropout(dropout),
                                 nn.Linear(in_dim, dim), nn.GELU(), nn.Linear(dim, dim))

        def layers(n, group, cross=False):
            cfg = adapter if group in adapter_in else None
            return nn.ModuleList(TransformerLayer(dim, num_heads, dropout=dropout,
                                                  cross_attention=cross, adapter=cfg)
                                 for _ in range(n))

        self.dim, self.fusion = dim, fusion
        self.grad_checkpointing = grad_checkpointing
        self.video_dim, self.text_dim = video_dim, text_dim
        self.video_proj, self.text_proj = proj(video_dim), proj(text_dim)
        # Per-channel standardisation over the batch's valid clips / words (no affine: the
        # projections that follow have their own).
        self.input_norm = input_norm
        if input_norm == 'batch':
            self.video_norm = nn.BatchNorm1d(video_dim, affine=False)
            self.text_norm = nn.BatchNorm1d(text_dim, affine=False)
        self.text_layers = layers(num_text_layers, 'text')
        self.video_layers = layers(num_video_layers, 'video')
        self.fusion_layers = layers(num_fusion_layers, 'fusion', cross=fusion == 'cross')
        # Tells the two modalities apart in the joint sequence.
        self.modality_embed = nn.Parameter(torch.zeros(2, dim)) if fusion == 'joint' else None
        self.norm = nn.LayerNorm(dim)

    @staticmethod
    def _standardise(norm: nn.BatchNorm1d, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``norm`` over the valid rows of ``x (B, T, D)`` only (padding neither enters the
        statistics nor changes); padded rows stay zero."""
        out = x.new_zeros(x.shape)
        out[mask] = norm(x[mask]).to(x.dtype)
        return out

    @staticmethod
    def _last_states(layer_list):
        for layer in reversed(layer_list):
            if layer.adapter is not None:
                return layer.adapter.last_states
        return None

    def forward(self, video: torch.Tensor, video_mask: torch.Tensor, text: torch.Tensor,
                text_mask: torch.Tensor) -> dict:
        """Args: video ``(B, T, video_dim)``, video_mask ``(B, T)``, text ``(B, L, text_dim)``,
        text_mask ``(B, L)`` (bool, True = valid). Padded positions are replaced by zeros
        first (selected, not multiplied), so NaN / inf there never reach valid outputs,
        gradients, or a masked attention."""
        video = torch.where(video_mask.unsqueeze(-1), video, 0.0)
        text = torch.where(text_mask.unsqueeze(-1), text, 0.0)
        if self.input_norm == 'batch':
            video = self._standardise(self.video_norm, video, video_mask)
            text = self._standardise(self.text_norm, text, text_mask)
        v = self.video_proj(video) + sinusoidal_positions(video.shape[1], self.dim, video.device)
        t = self.text_proj(text) + sinusoidal_positions(text.shape[1], self.dim, text.device)
        ckpt = self.grad_checkpointing
        for layer in self.text_layers:
            t = maybe_checkpoint(ckpt, layer, t, text_mask)
        for layer in self.video_layers:
            v = maybe_checkpoint(ckpt, layer, v, video_mask)
        out = dict(video_states=self._last_states(self.video_layers),
                   text_states=self._last_states(self.text_layers))
        if self.fusion == 'joint':
            x = torch.cat([v + self.modality_embed[0], t + self.modality_embed[1]], dim=1)
            mask = torch.cat([video_mask, text_mask], dim=1)
            for layer in self.fusion_layers:
                x = maybe_checkpoint(ckpt, layer, x, mask)
            v = x[:, :video.shape[1]]
        else:
            for layer in self.fusion_layers:
                v = maybe_checkpoint(ckpt, layer, v, video_mask, t, text_mask)
        out['feats'] = self.norm(v)
        return out
