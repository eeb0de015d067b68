"""READ adapter: a low-rank recurrent bottleneck (READ, AAAI 2024).

One adapter sits on the feed-forward residual branch of an adapted transformer
layer (see :mod:`mmvpeft.models.adapters.inject`)::

    z = down(x)           # (B, S, D) -> (B, S, r)
    h = rnn(z)            # recurrence over the sequence axis S (frames or words)
    out = x + dropout(up(gelu(h)))

``up`` is zero-initialised, so a freshly injected model computes exactly what the
frozen model computes. The recurrent states ``h`` are kept in
:attr:`ReadAdapter.last_states` with their autograd graph, for the PVLA
partial-OT alignment loss.
"""
from typing import Optional

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mmvpeft.registry import MODELS

_RNN_TYPES = {'rnn': nn.RNN, 'gru': nn.GRU, 'lstm': nn.LSTM}


def lengths_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Valid lengths of a right-padded boolean mask.

    Args:
        mask (Tensor): (B, S) bool, True at valid positions.

    Returns:
        Tensor: (B,) int64 lengths.

    Raises:
        ValueError: if ``mask`` is not 2-D bool or not right-padded (a False
            followed by a True in some row).
    """
    if mask.dtype != torch.bool or mask.dim() != 2:
        raise ValueError(
            f'mask must be a 2-D bool tensor (B, S), got dtype={mask.dtype}, '
            f'shape={tuple(mask.shape)}')
    if mask.shape[1] > 1 and (mask[:, 1:] & ~mask[:, :-1]).any():
        bad = torch.nonzero((mask[:, 1:] & ~mask[:, :-1]).any(dim=1)).flatten().tolist()
        raise ValueError(
            'mask must be right-padded (valid positions first, padding last); '
            f'rows {bad} have a valid position after padding')
    return mask.sum(dim=1)


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

    Attributes:
        last_states (Tensor | None): (B, S, r) recurrent states of the latest
            forward, with autograd graph, zeros at padded positions.
    """

    def __init__(self,
                 in_dim: int,
                 hidden_dim: int = 32,
                 rnn_type: str = 'rnn',
                 bidirectional: bool = False,
                 dropout: float = 0.0):
        super().__init__()
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
            h = h * mask.unsqueeze(-1).to(h.dtype)
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
        h = self._recur(self.down(x), mask, lengths)
        self.last_states = h
        delta = self.dropout(self.up(self.act(h)))
        if mask is not None:
            # `up` has a bias, so padded positions need an explicit zero update.
            delta = delta * mask.unsqueeze(-1).to(delta.dtype)
        return x + delta

    def extra_repr(self) -> str:
        return (f'in_dim={self.in_dim}, hidden_dim={self.hidden_dim}, '
                f'rnn_type={self.rnn_type!r}, bidirectional={self.bidirectional}')
