"""Batch variable-length grounding samples with right-padding and validity masks."""
from typing import List

import torch

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
        ``text_mask (B, L)``; ``data_samples``: list of B meta dicts.
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
    return dict(inputs=inputs, data_samples=[b['data_samples'] for b in batch])
