"""Batch variable-length grounding samples with right-padding and validity masks."""
from typing import List

import torch
import torch.nn.functional as F

from mmvpeft.registry import FUNCTIONS


def pad_sequences(seqs: List[torch.Tensor], pad_value=0):
    """Right-pad tensors on their first axis.

    Args:
        seqs: B tensors of shape ``(L_i, *rest)``.

    Returns:
        tuple: padded ``(B, L_max, *rest)`` and bool mask ``(B, L_max)`` (True = valid).
    """
    max_len = max(len(s) for s in seqs)
    out = seqs[0].new_full((len(seqs), max_len) + tuple(seqs[0].shape[1:]), pad_value)
    mask = torch.zeros(len(seqs), max_len, dtype=torch.bool)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
        mask[i, :len(s)] = True
    return out, mask


@FUNCTIONS.register_module()
def moment_collate(batch: List[dict]) -> dict:
    """Collate ``PackMomentInputs`` outputs.

    Returns:
        dict: ``inputs`` with ``video_feat (B, T, Dv)``, ``imgs (B, T, K, 3, H, W)`` or
        ``video_prefix (B, T, K, N, D)`` (a frozen-prefix cache) and ``video_mask (B, T)``;
        ``text_prefix (B, L, W)``, ``text_feat (B, L, Dt)`` or ``text_tokens (B, L)`` and
        ``text_mask (B, L)``; ``context_tokens`` / ``context_mask`` (B, C, L) when the items
        have a text context (:func:`collate_context`); ``data_samples``: list of B meta
        dicts.
    """
    inputs = {}
    keys = batch[0]['inputs'].keys()
    for key in ('video_feat', 'imgs', 'video_prefix'):
        if key in keys:
            inputs[key], inputs['video_mask'] = pad_sequences([b['inputs'][key] for b in batch])
    if 'text_prefix' in keys:  # a prefix cache holds valid tokens only: pad and mask
        inputs['text_prefix'], inputs['text_mask'] = pad_sequences(
            [b['inputs']['text_prefix'] for b in batch])
    elif 'text_feat' in keys:
        inputs['text_feat'], inputs['text_mask'] = pad_sequences(
            [b['inputs']['text_feat'] for b in batch])
    elif 'text_tokens' in keys:
        inputs['text_tokens'], _ = pad_sequences([b['inputs']['text_tokens'] for b in batch])
        inputs['text_mask'], _ = pad_sequences(
            [b['inputs']['text_mask'].bool() for b in batch], pad_value=False)
    return collate_context(batch, dict(inputs=inputs,
                                       data_samples=[b['data_samples'] for b in batch]))


def collate_context(batch: List[dict], out: dict) -> dict:
    """Add the items' optional text context (a question or transcript in chunks, from
    ``CLIPTokenizeChunks``) to a collated batch ``out``.

    Adds ``context_tokens (B, C, L)`` int64 and ``context_mask (B, C, L)`` bool, padded with
    empty chunks and masked tokens, when the items have ``context_tokens (C_i, L_i)``.
    """
    items = [b['inputs'] for b in batch]
    has = ['context_tokens' in it for it in items]
    if not any(has):
        return out
    if not all(has):
        meta = batch[has.index(False)]['data_samples']
        ident = {k: meta[k] for k in ('qid', 'vid') if k in meta}
        raise KeyError(f'item {ident} has no context_tokens while others in its batch do')
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
