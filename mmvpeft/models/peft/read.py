"""READ: recurrent adapters (READ, AAAI 2024) as a PETL method.

One adapter sits on the feed-forward residual branch (the ``mlp_branch`` site) of each
adapted transformer layer::

    z = down(x)           # (B, S, D) -> (B, S, r)
    h = rnn(z)            # recurrence over the sequence axis S (frames or words)
    out = x + dropout(up(gelu(h)))

``up`` is zero-initialised, so a freshly injected model computes exactly what the
frozen model computes. The recurrent states ``h`` are kept in
:attr:`ReadAdapter.last_states` with their autograd graph, for the PVLA
partial-OT alignment loss.
"""
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mmvpeft.registry import MODELS
from .base import BasePEFTMethod
from .layout import SequenceLayout, lengths_from_mask

_RNN_TYPES = {'rnn': nn.RNN, 'gru': nn.GRU, 'lstm': nn.LSTM}


@MODELS.register_module()
class ReadAdapter(nn.Module):
    """Recurrent adapter of READ.

    Args:
        in_dim (int): Width D of the transformer stream.
        hidden_dim (int): Bottleneck / recurrent width r. Defaults to 32.
        rnn_type (str): ``'rnn'`` (tanh Elman RNN, the paper's default),
            ``'gru'`` or ``'lstm'``.
        bidirectional (bool): Run the recurrence in both directions. The two
            directions' outputs are **summed**, so states stay (B, S, r)
            whichever direction setting is used (PVLA and ``up`` see the same
            width).
        dropout (float): Dropout on the adapter's update before the residual
            add. Defaults to 0.
        mode (str): In a vision tower, ``'tokens'``: one recurrence over frames
            per token position; ``'cls'``: only the CLS token is adapted.

    Attributes:
        last_states (Tensor | None): (B, S, r) recurrent states of the latest
            forward, with autograd graph, zeros at padded positions.
    """

    def __init__(self,
                 in_dim: int,
                 hidden_dim: int = 32,
                 rnn_type: str = 'rnn',
                 bidirectional: bool = False,
                 dropout: float = 0.0,
                 mode: str = 'tokens'):
        super().__init__()
        if mode not in ('tokens', 'cls'):
            raise ValueError(f"READ mode must be 'tokens' or 'cls', got {mode!r}")
        self.mode = mode
        if rnn_type not in _RNN_TYPES:
            raise ValueError(
                f'rnn_type must be one of {sorted(_RNN_TYPES)}, got {rnn_type!r}')
        self.in_dim = in_dim
        self.hidden_dim = hidden_dim
        self.rnn_type = rnn_type
        self.bidirectional = bidirectional

        self.down = nn.Linear(in_dim, hidden_dim)
        self.rnn = _RNN_TYPES[rnn_type](
            hidden_dim, hidden_dim, batch_first=True, bidirectional=bidirectional)
        self.act = nn.GELU()
        self.up = nn.Linear(hidden_dim, in_dim)
        self.dropout = nn.Dropout(dropout)
        # Zero `up` so injection is an exact no-op until training moves it.
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.last_states: Optional[torch.Tensor] = None

    def _recur(self, z: torch.Tensor, mask: Optional[torch.Tensor],
               lengths: Optional[torch.Tensor]) -> torch.Tensor:
        """Runs the RNN over axis 1 of ``z`` (B, S, r); padding stays out."""
        full = mask is None or bool((lengths == z.shape[1]).all())
        if full:
            h, _ = self.rnn(z)
        else:
            # pack_padded_sequence rejects zero lengths; such rows are fully
            # masked below, so running them on one (discarded) step is harmless.
            packed = pack_padded_sequence(
                z, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
            h, _ = self.rnn(packed)
            h, _ = pad_packed_sequence(h, batch_first=True, total_length=z.shape[1])
        if self.bidirectional:
            h = h[..., :self.hidden_dim] + h[..., self.hidden_dim:]
        if not full:
            h = torch.where(mask.unsqueeze(-1), h, 0.0)
        return h

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Adapts ``x`` with a recurrence over its sequence axis.

        Args:
            x (Tensor): (B, S, D) input (the FFN branch output).
            mask (Tensor, optional): (B, S) bool, True at valid positions,
                right-padded. ``None`` means every position is valid.

        Returns:
            Tensor: (B, S, D). Equal to ``x`` at padded positions.
        """
        if x.dim() != 3 or x.shape[-1] != self.in_dim:
            raise ValueError(
                f'ReadAdapter expects (B, S, {self.in_dim}), got {tuple(x.shape)}')
        lengths = None
        if mask is not None:
            if mask.shape != x.shape[:2]:
                raise ValueError(
                    f'mask shape {tuple(mask.shape)} does not match x {tuple(x.shape[:2])}')
            lengths = lengths_from_mask(mask)
            # Select, don't multiply: NaN / inf in padded positions must not reach `down`'s
            # weight gradient (0 * NaN is NaN) or the recurrence.
            x_in = torch.where(mask.unsqueeze(-1), x, 0.0)
        else:
            x_in = x
        h = self._recur(self.down(x_in), mask, lengths)
        self.last_states = h
        delta = self.dropout(self.up(self.act(h)))
        if mask is not None:
            # `up` has a bias, so padded positions need an explicit zero update.
            delta = torch.where(mask.unsqueeze(-1), delta, 0.0)
        return x + delta

    @property
    def incremental(self) -> bool:
        """Whether the adapter can run word by word from a carried state (a decoder's
        key/value cache): a one-directional recurrence can, a bidirectional one cannot."""
        return not self.bidirectional

    def step(self, x: torch.Tensor, state=None):
        """Continues the recurrence over the newest positions of unpadded sequences.

        Args:
            x (Tensor): (B, n, D) the n newest positions.
            state: the carried RNN state returned by the previous call, batch first
                ((B, 1, r), or a pair of them for an LSTM); ``None`` at the first positions.

        Returns:
            tuple: (B, n, D) adapted ``x`` (what :meth:`forward` gives at these positions
            of the whole sequence) and the new carried state.
        """
        if self.bidirectional:
            raise RuntimeError('a bidirectional READ adapter reads later words, so it cannot '
                               'run word by word; decode without the key/value cache')
        if state is not None:  # batch first -> the RNN's (layers, B, r)
            state = (tuple(s.transpose(0, 1).contiguous() for s in state)
                     if isinstance(state, tuple) else state.transpose(0, 1).contiguous())
        h, new = self.rnn(self.down(x), state)
        self.last_states = h
        new = tuple(s.transpose(0, 1) for s in new) if isinstance(new, tuple) else \
            new.transpose(0, 1)
        return x + self.dropout(self.up(self.act(h))), new

    def mlp_branch(self, branch: torch.Tensor, layout: Optional[SequenceLayout]) -> torch.Tensor:
        """PETL site handler: adapts the FFN branch ``ls_2(mlp(ln_2(x)))`` of a block.

        The update is added to the branch unscaled, so a small pretrained LayerScale gamma
        does not throttle it. Appends the (B, S, r) states (CLS position for vision) to
        ``layout.aux['read_states_raw']``.

        Args:
            branch (Tensor): (B, L, D) text or (B*F, N, D) vision block branch.
            layout (SequenceLayout): the tower's layout for this forward.
        """
        if layout is None:
            raise RuntimeError(
                'READ-adapted block called without a SequenceLayout; run the tower through '
                'its backbone (or wrap the call in peft_context(...)) so the adapter knows '
                'the frame/word layout')
        raw = layout.aux.setdefault('read_states_raw', [])
        if not layout.is_video and layout.step_cache is not None:  # newest words only
            out, layout.step_cache[self] = self.step(branch, layout.step_cache.get(self))
            raw.append(self.last_states)
            return out
        if not layout.is_video:  # text: (B, L, D), recurrence over words
            out = self(branch, layout.mask)
            raw.append(self.last_states)
            return out

        bf, n, d = branch.shape
        f = layout.num_frames
        if bf % f:
            raise ValueError(f'block batch {bf} is not a multiple of num_frames={f}')
        b = bf // f
        if self.mode == 'cls':
            out_cls = self(branch[:, 0].reshape(b, f, d), layout.mask)
            raw.append(self.last_states)
            return torch.cat([out_cls.reshape(bf, 1, d), branch[:, 1:]], dim=1)
        # One recurrence over frames per token position: (B*F, N, D) -> (B*N, F, D).
        seq = branch.reshape(b, f, n, d).transpose(1, 2).reshape(b * n, f, d)
        mask = layout.mask.repeat_interleave(n, dim=0) if layout.mask is not None else None
        out = self(seq, mask)
        raw.append(self.last_states.reshape(b, n, f, -1)[:, 0])
        return out.reshape(b, n, f, d).transpose(1, 2).reshape(bf, n, d)

    def extra_repr(self) -> str:
        return (f'in_dim={self.in_dim}, hidden_dim={self.hidden_dim}, '
                f'rnn_type={self.rnn_type!r}, bidirectional={self.bidirectional}')


@MODELS.register_module()
class READ(BasePEFTMethod):
    """READ recurrent adapters in chosen blocks of a vision or text tower.

    In a vision tower the recurrence runs over frames (per token position, or on CLS only
    with ``mode='cls'``), in a text tower over words, masked by the layout so padding never
    leaks. Each adapter is ``block.read_adapter`` (the name adapter-only checkpoints use).

    Outputs: ``read_states`` (B, S, r), the CLS-position states of the last adapted block,
    with graph; for video S is the number of clips (states averaged over the K frames of a
    clip). PVLA aligns these.

    Args:
        layers: blocks to adapt. Defaults to (-1, ).
        hidden_dim, rnn_type, bidirectional, dropout, mode: :class:`ReadAdapter` options.
    """
    default_layers = (-1, )

    def __init__(self, layers=(-1, ), hidden_dim: int = 32, rnn_type: str = 'rnn',
                 bidirectional: bool = False, dropout: float = 0.0, mode: str = 'tokens'):
        super().__init__(layers)
        self.adapter_cfg = dict(hidden_dim=hidden_dim, rnn_type=rnn_type,
                                bidirectional=bidirectional, dropout=dropout, mode=mode)

    def apply(self, tower: nn.Module) -> None:
        for i in self.blocks_of(tower):
            self.add(tower, i, ('mlp_branch', ), 'read_adapter',
                     ReadAdapter(in_dim=tower.width, **self.adapter_cfg))

    @property
    def hidden_dim(self) -> int:
        return self.adapter_cfg['hidden_dim']

    def outputs(self, layout: SequenceLayout) -> Dict[str, torch.Tensor]:
        if 'read_states' not in layout.aux:
            raw = layout.aux.get('read_states_raw')
            if not raw:
                return {}
            states = raw[-1]
            if layout.is_video and layout.frames_per_clip > 1:
                b, f, r = states.shape
                k = layout.frames_per_clip
                states = states.reshape(b, f // k, k, r).mean(dim=2)
            layout.aux['read_states'] = states
        return dict(read_states=layout.aux['read_states'])


def legacy_read_cfg(adapter: Optional[dict], layers: Sequence[int],
                    mode: Optional[str] = None) -> Optional[dict]:
    """The ``peft`` entry equivalent to the old ``adapter=`` / ``adapter_layers=`` /
    ``adapter_mode=`` backbone arguments (kept so existing configs keep working)."""
    if adapter is None:
        return None
    cfg = dict(adapter)
    typ = cfg.pop('type', 'ReadAdapter')
    if typ not in ('ReadAdapter', ReadAdapter):
        raise ValueError(f'adapter type must be ReadAdapter, got {typ!r}; use peft=[...] '
                         'for other PETL methods')
    cfg.pop('in_dim', None)
    if mode is not None:
        cfg['mode'] = mode
    return dict(type='READ', layers=layers, **cfg)
