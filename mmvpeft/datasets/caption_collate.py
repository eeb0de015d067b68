"""Batch captioning samples: retrieval's layout plus a padded text context."""
from typing import List

from mmvpeft.registry import FUNCTIONS
from .collate import collate_context
from .retrieval_collate import retrieval_collate


@FUNCTIONS.register_module()
def caption_collate(batch: List[dict]) -> dict:
    """Collate ``PackCaptionInputs`` outputs (``type='mmvpeft.caption_collate'``).

    Returns:
        dict: as :func:`retrieval_collate` (``imgs``, ``video_mask``, ``text_tokens`` /
        ``text_mask`` of the captions, ``text_video_index``), plus, when the items have a
        context, ``context_tokens (B, C, L)`` int64 and ``context_mask (B, C, L)`` bool,
        padded with empty chunks and masked tokens.
    """
    return collate_context(batch, retrieval_collate(batch))
