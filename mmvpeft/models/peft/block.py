"""One open_clip block with named entry points ("sites") where PETL methods attach.

A method never copies a block's forward. It registers a small per-block module at one or more
sites of :class:`PEFTBlock`, which runs the pretrained computation of open_clip's
``ResidualAttentionBlock`` and calls the registered modules at fixed points::

    x = pre_block(x)                                  # ST-Adapter, deep prompts
    h = ln_1(x)
    a = attention(h)      owned by one method (token mixing), else multi-head attention with
                          q,k,v = in_proj(h) + qkv(h) and out = out_proj(o) + attn_out(o)  (LoRA)
    a = attn_branch(ls_1(a))                          # Houlsby adapter
    x = x + a
    m = c_proj(gelu(c_fc(h') + mlp_fc(h')) + mlp_proj(.))                                  (LoRA)
    m = mlp_branch(ls_2(m))                           # READ, Houlsby adapter
    x = x + m

Several methods may share a site (they run in config order); ``attention`` is exclusive.
A block enters this class by a class swap, so its parameters keep their CLIP names (a CLIP
checkpoint still loads) and the method modules are extra submodules with their own names.
With no module registered the block computes exactly what open_clip computes (tested).

Handler signatures (methods of the registered module, named after the site):
    ``pre_block(x, layout) -> x``; ``attention(block, h, attn_mask, layout) -> a``;
    ``qkv(h) -> delta (.., 3D)``; ``attn_out(o) -> delta (.., D)``;
    ``attn_branch(a, layout) -> a``; ``mlp_fc(h) -> delta (.., hidden)``;
    ``mlp_proj(h) -> delta (.., D)``; ``mlp_branch(m, layout) -> m``.
"""
import contextlib
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock

from .checkpoint import checkpoint_block, needs_checkpoint
from .layout import SequenceLayout

SITES = ('pre_block', 'attention', 'qkv', 'attn_out', 'attn_branch', 'mlp_fc', 'mlp_proj',
         'mlp_branch')
EXCLUSIVE_SITES = ('attention', )


def _select_valid(x: torch.Tensor, layout: Optional[SequenceLayout]) -> torch.Tensor:
    """Zero the non-finite entries of padded frames (video) or padded words (text) of ``x``.

    Selection, not multiplication: NaN / inf in padding then never reach a trainable
    weight's gradient (``0 * NaN`` is NaN) or a masked attention (``NaN + -inf`` is NaN).
    Valid positions and finite padding are left bit for bit as they are (finite padding is
    already inert, and padded clips keep giving the frozen tower's features).

    Args:
        x: ``(B*F, N, D)`` vision or ``(B, L, D)`` text block input.
        layout: the tower's layout; nothing to do without a mask.
    """
    if layout is None or layout.mask is None:
        return x
    mask = layout.mask
    if layout.is_video:
        keep = mask.reshape(-1, 1, 1)  # one flag per frame, frames in (B*F) order
    elif x.shape[:2] == mask.shape:
        keep = mask.unsqueeze(-1)
    else:  # a layout that does not describe this sequence: leave it as it is
        return x
    if keep.shape[0] != x.shape[0]:
        return x
    return torch.where(keep | torch.isfinite(x), x, 0.0)


class PEFTBlock(ResidualAttentionBlock):
    """open_clip ``ResidualAttentionBlock`` with PETL sites (see the module docstring).

    Never constructed directly: :func:`attach` swaps the class of an existing block.

    Attributes:
        peft_sites (dict): site -> names of the registered submodules, in call order.
        peft_owners (dict): site -> names of the methods that registered them (for errors).
        peft_layout (SequenceLayout | None): set by :func:`peft_context` for one forward.
    """
    peft_sites: Dict[str, List[str]]
    peft_owners: Dict[str, List[str]]
    peft_layout: Optional[SequenceLayout]
    # Set by a tower on its last block when only token 0 (CLS) reaches the tower's output:
    # the block then computes attention for that query only, and the MLP and the methods'
    # branch handlers on that token only (same result for it, tested).
    peft_pooled_only: bool = False
    # Set by a tower built with ``grad_checkpointing=True``: the block's activations are
    # recomputed in backward instead of kept (:mod:`mmvpeft.models.peft.checkpoint`).
    peft_checkpoint: bool = False

    def _handlers(self, site: str) -> List[nn.Module]:
        return [getattr(self, name) for name in self.peft_sites.get(site, ())]

    def forward(self,
                q_x: torch.Tensor,
                k_x: Optional[torch.Tensor] = None,
                v_x: Optional[torch.Tensor] = None,
                attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        if k_x is not None or v_x is not None:
            raise ValueError('PETL blocks are self-attention blocks; cross-attention '
                             '(k_x / v_x) is not supported')
        if self.peft_checkpoint and needs_checkpoint(self, q_x):
            return checkpoint_block(self, self.peft_forward, q_x, attn_mask)
        return self.peft_forward(q_x, attn_mask)

    def peft_forward(self, q_x: torch.Tensor,
                     attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The block's computation (module docstring); :meth:`forward` may checkpoint it."""
        layout = self.peft_layout
        x = _select_valid(q_x, layout)
        for m in self._handlers('pre_block'):
            x = m.pre_block(x, layout)

        h = self.ln_1(x)
        owner = self._handlers('attention')
        if self.peft_pooled_only and not owner and attn_mask is None:
            a = self.pooled_attention(h)
            x = x[:, :1]
        elif owner:
            a = owner[0].attention(self, h, attn_mask, layout)
        elif self.peft_sites.get('qkv') or self.peft_sites.get('attn_out'):
            a = self.peft_attention(h, attn_mask)
        else:
            a = self.attention(q_x=h, attn_mask=attn_mask)
        a = self.ls_1(a)
        for m in self._handlers('attn_branch'):
            a = m.attn_branch(a, layout)
        x = x + a

        h = self.ln_2(x)
        if self.peft_sites.get('mlp_fc') or self.peft_sites.get('mlp_proj'):
            m_out = self.peft_mlp(h)
        else:
            m_out = self.mlp(h)
        m_out = self.ls_2(m_out)
        for m in self._handlers('mlp_branch'):
            m_out = m.mlp_branch(m_out, layout)
        return x + m_out

    # Building blocks for attention owners and parametrisations -----------------------------
    @property
    def num_heads(self) -> int:
        return self.attn.num_heads

    def project_qkv(self, h: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pretrained q, k, v projections of ``h`` (.., D), plus the ``qkv`` deltas."""
        qkv = F.linear(h, self.attn.in_proj_weight, self.attn.in_proj_bias)
        for m in self._handlers('qkv'):
            qkv = qkv + m.qkv(h)
        return qkv.chunk(3, dim=-1)

    def project_out(self, o: torch.Tensor) -> torch.Tensor:
        """Pretrained output projection of ``o`` (.., D), plus the ``attn_out`` deltas."""
        out = self.attn.out_proj(o)
        for m in self._handlers('attn_out'):
            out = out + m.attn_out(o)
        return out

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, S, D) -> (B, H, S, D/H)."""
        b, s, d = x.shape
        return x.view(b, s, self.num_heads, d // self.num_heads).transpose(1, 2)

    @staticmethod
    def merge_heads(x: torch.Tensor) -> torch.Tensor:
        """(B, H, S, d) -> (B, S, H*d)."""
        b, nh, s, dh = x.shape
        return x.transpose(1, 2).reshape(b, s, nh * dh)

    def peft_attention(self, h: torch.Tensor,
                       attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Multi-head self-attention of ``h`` (B, S, D) through :meth:`project_qkv` /
        :meth:`project_out`; equals ``nn.MultiheadAttention`` on the same weights."""
        q, k, v = (self.split_heads(t) for t in self.project_qkv(h))
        if attn_mask is not None:  # open_clip's masks are additive (as its attention casts)
            attn_mask = attn_mask.to(q.dtype)
        dropout = self.attn.dropout if self.training else 0.0
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout)
        return self.project_out(self.merge_heads(o))

    def pooled_attention(self, h: torch.Tensor) -> torch.Tensor:
        """Self-attention output of token 0 only: (B, S, D) -> (B, 1, D). Keys and values
        still come from every token (through :meth:`project_qkv`, so LoRA applies)."""
        q, k, v = self.project_qkv(h)
        q, k, v = (self.split_heads(t) for t in (q[:, :1], k, v))
        dropout = self.attn.dropout if self.training else 0.0
        o = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        return self.project_out(self.merge_heads(o))

    def peft_mlp(self, h: torch.Tensor) -> torch.Tensor:
        """open_clip's MLP (c_fc, act, c_proj) plus the ``mlp_fc`` / ``mlp_proj`` deltas."""
        z = self.mlp.c_fc(h)
        for m in self._handlers('mlp_fc'):
            z = z + m.mlp_fc(h)
        z = self.mlp.gelu(z)
        out = self.mlp.c_proj(z)
        for m in self._handlers('mlp_proj'):
            out = out + m.mlp_proj(z)
        return out


def as_peft_block(block: nn.Module, index: int) -> PEFTBlock:
    """Turns an open_clip ``ResidualAttentionBlock`` into a :class:`PEFTBlock` in place."""
    if isinstance(block, PEFTBlock):
        return block
    if type(block) is not ResidualAttentionBlock:
        raise TypeError(f'block {index} is {type(block).__name__}; PETL methods attach to '
                        "open_clip's ResidualAttentionBlock only")
    if not block.attn.batch_first or not block.attn._qkv_same_embed_dim:
        raise TypeError(f'block {index}: PETL blocks need a batch-first attention with a '
                        'packed in_proj_weight (open_clip >= 2.24 layout)')
    block.peft_sites, block.peft_owners, block.peft_layout = {}, {}, None
    block.__class__ = PEFTBlock
    return block


def attach(block: nn.Module, index: int, site: str, name: str, module: Optional[nn.Module],
           method: str) -> PEFTBlock:
    """Registers ``module`` (as submodule ``name``) at ``site`` of block ``index``.

    Args:
        block: an open_clip block (swapped to :class:`PEFTBlock` on first use).
        index: its position in the tower, for messages.
        site: one of :data:`SITES`.
        name: attribute name of the module on the block; the same module may serve several
            sites under one name (LoRA on qkv and attn_out).
        module: the per-block module; ``None`` when ``name`` is already registered.
        method: the method's name, for clash messages.

    Raises:
        ValueError: an unknown site, a name taken by another module, or a second method at an
            exclusive site (the message names both methods).
    """
    if site not in SITES:
        raise ValueError(f'unknown PETL site {site!r}; sites are {SITES}')
    block = as_peft_block(block, index)
    if site in EXCLUSIVE_SITES and block.peft_sites.get(site):
        other = block.peft_owners[site][0]
        raise ValueError(f'{method} and {other} both need the {site} of block {index}; it can '
                         'have one owner only. Put them on different blocks.')
    if module is not None:
        existing = getattr(block, name, None)
        if existing is not None and existing is not module:
            raise ValueError(f'block {index} already has a submodule named {name!r} '
                             f'(is {method} listed twice for this block?)')
        param = next(block.parameters())
        module.to(device=param.device, dtype=param.dtype)
        setattr(block, name, module)
    elif not hasattr(block, name):
        raise ValueError(f'block {index} has no submodule {name!r} to register at {site}')
    block.peft_sites.setdefault(site, []).append(name)
    block.peft_owners.setdefault(site, []).append(method)
    return block


def detach(block: PEFTBlock, name: str) -> None:
    """Removes submodule ``name`` from every site of ``block`` and from the block."""
    for site in list(block.peft_sites):
        keep = [(n, o) for n, o in zip(block.peft_sites[site], block.peft_owners[site])
                if n != name]
        block.peft_sites[site] = [n for n, _ in keep]
        block.peft_owners[site] = [o for _, o in keep]
    if hasattr(block, name):
        delattr(block, name)


def peft_blocks(blocks: Sequence[nn.Module]) -> List[PEFTBlock]:
    return [b for b in blocks if isinstance(b, PEFTBlock)]


@contextlib.contextmanager
def peft_context(blocks: Sequence[nn.Module], layout: SequenceLayout) -> Iterator[SequenceLayout]:
    """Sets ``layout`` on the PETL blocks of ``blocks`` for one forward.

    Cleared on exit, also on error, so a stale layout (or a tensor holding a graph) never
    survives into the next call.
    """
    targets = peft_blocks(blocks)
    for b in targets:
        b.peft_layout = layout
    try:
        yield layout
    finally:
        for b in targets:
            b.peft_layout = None
