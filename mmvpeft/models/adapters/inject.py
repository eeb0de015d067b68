"""Injects READ adapters into open_clip transformer blocks.

The adapter becomes a submodule of the existing block (``block.read_adapter``)
and the block's class is swapped to :class:`ReadResidualAttentionBlock`, so no
new parent module appears and every pretrained parameter keeps its name: a CLIP
checkpoint still loads into an adapted model (the adapter keys are simply extra).

An adapted block needs to know how its (batch, tokens, width) input maps onto
the recurrence axis; the backbone states that explicitly with a
:class:`ReadSequenceContext`, set on the adapted blocks for one tower forward
through :func:`read_context`::

    ctx = ReadSequenceContext(num_frames=T, mask=valid)   # vision tower
    ctx = ReadSequenceContext(mask=text_mask)              # text tower
    with read_context(resblocks, ctx):
        out = tower(x)
    states = ctx.states[-1]   # (B, S, r) of the last adapted layer
"""
import contextlib
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Sequence

import torch
import torch.nn as nn
from open_clip.transformer import ResidualAttentionBlock

from .read_adapter import ReadAdapter


@dataclass
class ReadSequenceContext:
    """Sequence layout of one tower forward, shared by its adapted blocks.

    Attributes:
        num_frames (int, optional): ``None`` for a text tower: a block input
            (B, L, D) already has the recurrence on axis 1 (words). For a
            vision tower, the number of frames F per sample: a block input is
            (B*F, N, D) with frames of one sample consecutive, and the
            recurrence runs over F.
        mask (Tensor, optional): (B, S) bool valid mask over the recurrence
            axis (S = L words or F frames), right-padded. ``None``: all valid.
        cls_only (bool): Vision only. Run the adapter on the CLS token of each
            frame only; other tokens pass through unchanged. Otherwise every
            token position gets its own recurrence over frames.
        states (list[Tensor]): Filled by the blocks, in block order: (B, S, r)
            recurrent states (CLS position for vision) of each adapted layer.
    """
    num_frames: Optional[int] = None
    mask: Optional[torch.Tensor] = None
    cls_only: bool = False
    states: List[torch.Tensor] = field(default_factory=list)


class ReadResidualAttentionBlock(ResidualAttentionBlock):
    """open_clip ``ResidualAttentionBlock`` with a READ adapter on its FFN branch.

    Never constructed directly: :func:`inject_read_adapters` swaps the class of
    an existing block. The adapter takes the whole FFN residual branch, i.e.
    ``ls_2(mlp(ln_2(x)))`` *after* the (frozen) LayerScale, and its output is
    added to the stream unscaled, so a small pretrained LayerScale gamma does
    not throttle the adapter's update. (For OpenAI CLIP ``ls_2`` is Identity.)
    """
    read_adapter: ReadAdapter
    read_context: Optional[ReadSequenceContext]

    def forward(self,
                q_x: torch.Tensor,
                k_x: Optional[torch.Tensor] = None,
                v_x: Optional[torch.Tensor] = None,
                attn_mask: Optional[torch.Tensor] = None):
        # Same as open_clip 3.3 ResidualAttentionBlock.forward, plus the adapter.
        k_x = self.ln_1_kv(k_x) if hasattr(self, 'ln_1_kv') and k_x is not None else None
        v_x = self.ln_1_kv(v_x) if hasattr(self, 'ln_1_kv') and v_x is not None else None
        x = q_x + self.ls_1(self.attention(q_x=self.ln_1(q_x), k_x=k_x, v_x=v_x, attn_mask=attn_mask))
        x = x + self._adapt(self.ls_2(self.mlp(self.ln_2(x))))
        return x

    def _adapt(self, branch: torch.Tensor) -> torch.Tensor:
        ctx = self.read_context
        if ctx is None:
            raise RuntimeError(
                'READ-adapted block called without a ReadSequenceContext; run the '
                'tower through its backbone (or wrap the call in read_context(...)) '
                'so the adapter knows the frame/word layout')
        if ctx.num_frames is None:  # text: (B, L, D), recurrence over words
            out = self.read_adapter(branch, ctx.mask)
            ctx.states.append(self.read_adapter.last_states)
            return out

        bf, n, d = branch.shape
        f = ctx.num_frames
        if bf % f:
            raise ValueError(f'block batch {bf} is not a multiple of num_frames={f}')
        b = bf // f
        if ctx.cls_only:
            out_cls = self.read_adapter(branch[:, 0].reshape(b, f, d), ctx.mask)
            ctx.states.append(self.read_adapter.last_states)
            return torch.cat([out_cls.reshape(bf, 1, d), branch[:, 1:]], dim=1)
        # One recurrence over frames per token position: (B*F, N, D) -> (B*N, F, D).
        seq = branch.reshape(b, f, n, d).transpose(1, 2).reshape(b * n, f, d)
        mask = ctx.mask.repeat_interleave(n, dim=0) if ctx.mask is not None else None
        out = self.read_adapter(seq, mask)
        states = self.read_adapter.last_states
        ctx.states.append(states.reshape(b, n, f, -1)[:, 0])
        return out.reshape(b, n, f, d).transpose(1, 2).reshape(bf, n, d)


def _resolve_layers(layers: Sequence[int], depth: int) -> List[int]:
    if isinstance(layers, int):
        layers = (layers, )
    resolved = []
    for idx in layers:
        if not isinstance(idx, int) or isinstance(idx, bool):
            raise TypeError(f'adapter layer indices must be ints, got {idx!r}')
        if not -depth <= idx < depth:
            raise IndexError(
                f'adapter layer index {idx} is out of range for a transformer of '
                f'depth {depth} (valid: {-depth}..{depth - 1})')
        pos = idx % depth
        if pos in resolved:
            raise ValueError(f'adapter layer {idx} (block {pos}) is listed twice in {list(layers)}')
        resolved.append(pos)
    return sorted(resolved)


def inject_read_adapters(resblocks: nn.ModuleList,
                         layers: Sequence[int],
                         adapter_cfg: Optional[dict],
                         width: int) -> List[ReadAdapter]:
    """Adds a READ adapter to the chosen open_clip blocks, in place.

    Args:
        resblocks (nn.ModuleList): ``Transformer.resblocks`` of an open_clip
            tower (batch-first blocks).
        layers (Sequence[int]): Block indices to adapt; negative indices count
            from the end (-1 = last block).
        adapter_cfg (dict, optional): :class:`ReadAdapter` kwargs without
            ``in_dim``; an optional ``type='ReadAdapter'`` key is accepted.
        width (int): Transformer width D (the adapter's ``in_dim``).

    Returns:
        list[ReadAdapter]: The new adapters, in block order.

    Raises:
        IndexError: a layer index outside ``[-depth, depth)``.
        TypeError: a block that is not a plain open_clip
            ``ResidualAttentionBlock`` (custom blocks are not supported).
        ValueError: a block listed twice or already adapted.
    """
    cfg = dict(adapter_cfg or {})
    typ = cfg.pop('type', 'ReadAdapter')
    if typ not in ('ReadAdapter', ReadAdapter):
        raise ValueError(f'adapter type must be ReadAdapter, got {typ!r}')
    if cfg.pop('in_dim', width) != width:
        raise ValueError(f'adapter in_dim must equal the transformer width {width}')

    adapters = []
    for pos in _resolve_layers(layers, len(resblocks)):
        block = resblocks[pos]
        if isinstance(block, ReadResidualAttentionBlock):
            raise ValueError(f'block {pos} already has a READ adapter')
        if type(block) is not ResidualAttentionBlock:
            raise TypeError(
                f'block {pos} is {type(block).__name__}; READ injection supports '
                'open_clip ResidualAttentionBlock only')
        adapter = ReadAdapter(in_dim=width, **cfg)
        param = next(block.parameters())
        adapter.to(device=param.device, dtype=param.dtype)
        block.read_adapter = adapter
        block.read_context = None
        block.__class__ = ReadResidualAttentionBlock
        adapters.append(adapter)
    return adapters


def read_blocks(resblocks: nn.ModuleList) -> List[ReadResidualAttentionBlock]:
    """The READ-adapted blocks of ``resblocks``, in order."""
    return [b for b in resblocks if isinstance(b, ReadResidualAttentionBlock)]


@contextlib.contextmanager
def read_context(resblocks: nn.ModuleList,
                 ctx: ReadSequenceContext) -> Iterator[ReadSequenceContext]:
    """Sets ``ctx`` on the adapted blocks of ``resblocks`` for one forward.

    The context is cleared on exit, also on error, so a stale layout (or a
    tensor holding a graph) never survives into the next call.
    """
    blocks = read_blocks(resblocks)
    for b in blocks:
        b.read_context = ctx
    try:
        yield ctx
    finally:
        for b in blocks:
            b.read_context = None
