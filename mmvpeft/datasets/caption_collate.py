"""Batch captioning samples: retrieval's layout plus a padded text context."""
from typing import List

import torch
import torch.nn.functional as F

from mmvpeft.registry import FUNCTIONS
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
    out = retrieval_collate(batch)
    items = [b['inputs'] for b in batch]
    has = ['context_tokens' in it for it in items]
    if any(has):
        if not all(has):
            vid = batch[has.index(False)]['data_samples'].get('vid')
            raise KeyError(f'caption_collate: item vid={vid!r} has no context_tokens while '
                           'others do')
        c = max(it['context_tokens'].shape[0] for it in items)
        length = max(it['context_tokens'].shape[1] for it in items)
        tokens, masks = [], []
        for it in items:
            t, m = it['context_tokens'], it['context_mask'].bool()
            pad = (0, length - t.shape[1], 0, c - t.shape[0])
            tokens.append(F.pad(t.long(), pad))
            masks.append(F.pad(m, pad, value=False))
        out['inputs']['context_tokens'] = torch.stack(tokens)
        out['inputs']['context_mask'] = torch.stack(masks)
    return out
