"""The sequence layout of one tower forward, shared by every PETL method of that tower.

A CLIP block only sees a ``(batch, tokens, width)`` tensor. Methods that act across frames or
words (READ's recurrence, token mixing, ST-Adapter's temporal convolution) need to know how
that batch maps onto videos and which frames or words are padding. The tower states it once
per forward in a :class:`SequenceLayout` and every PETL block of the tower reads the same
object, so all methods agree on it.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import torch


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


@dataclass
class SequenceLayout:
    """How a block input maps onto videos (vision) or queries (text).

    Attributes:
        batch_size (int): B, the number of videos or queries.
        num_frames (int, optional): ``None`` for a text tower: a block input is (B, L, D)
            with words on axis 1. For a vision tower, F frames per video: a block input is
            (B*F, N, D) with the frames of one video consecutive.
        mask (Tensor, optional): (B, S) bool valid mask over S = F frames or L words,
            right-padded; ``None``: all valid.
        frames_per_clip (int): K, for a video cut into F/K clips of K frames each (methods
            that report per-clip outputs average over K). 1 for text.
        num_prefix_tokens (int): tokens before the patch grid in every frame (1 = CLS); a
            prompt method that inserts tokens raises it for the blocks after it. 0 for text.
        grid_size (tuple, optional): (h, w) patch grid of a vision tower.
        aux (dict): per-forward scratch space and outputs of the methods (e.g. READ's states);
            the tower turns it into the ``aux`` dict of its output.
        step_cache (dict, optional): set by a text decoder generating word by word with a
            key/value cache: a block input then holds only the newest words (B, n, D) of
            sequences whose earlier words were already processed, and a method that acts
            across words keeps its carried state here, keyed by its module, batch first
            (the decoder reorders it with the beams). ``None``: whole sequences.
    """
    batch_size: int
    num_frames: Optional[int] = None
    mask: Optional[torch.Tensor] = None
    frames_per_clip: int = 1
    num_prefix_tokens: int = 0
    grid_size: Optional[tuple] = None
    aux: Dict[str, Any] = field(default_factory=dict)
    step_cache: Optional[Dict[Any, Any]] = None

    @property
    def is_video(self) -> bool:
        return self.num_frames is not None

    def lengths(self) -> torch.Tensor:
        """(B,) valid frames or words per sample (all valid when ``mask`` is None)."""
        if self.mask is None:
            s = self.num_frames if self.is_video else None
            if s is None:
                raise ValueError('a text layout without a mask has no known length')
            return torch.full((self.batch_size, ), s, dtype=torch.long)
        return lengths_from_mask(self.mask)
