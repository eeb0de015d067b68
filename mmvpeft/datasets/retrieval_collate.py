"""Batch retrieval samples: B videos, each with its own number of captions."""
from typing import List

import torch

from mmvpeft.registry import FUNCTIONS
from .collate import pad_sequences


@FUNCTIONS.register_module()
def retrieval_collate(batch: List[dict]) -> dict:
    """Collate ``PackRetrievalInputs`` outputs; configs use ``type='mmvpeft.retrieval_collate'``.

    Captions of all videos are concatenated into one text batch; ``text_video_index`` says
    which video (row of ``imgs``) each caption describes. In training every item is one
    (video, caption) pair, so ``C == B`` and ``text_video_index == arange(B)``; in test mode
    each item is a video with all its captions.

    Args:
        batch: B dicts ``{'inputs': {'imgs' (T_i, 3, H, W) uint8 | 'video_feat' (T_i, D),
            'text_tokens' (C_i, L_i), 'text_mask' (C_i, L_i)}, 'data_samples': dict}``.

    Returns:
        dict: ``inputs`` with ``imgs (B, T, 3, H, W)`` uint8 (or ``video_feat (B, T, D)``, or
        ``video_prefix (B, T, K, N, D)`` from a frozen-prefix cache),
        ``video_mask (B, T)`` bool (True = real frame; videos with fewer frames are
        zero-padded), ``text_tokens (C, L)`` int64 and ``text_mask (C, L)`` bool (right-padded
        to the longest caption, ``C = sum C_i``), ``text_video_index (C,)`` int64;
        ``data_samples``: the B meta dicts (``vid``, ``captions``, ``caption_ids``, ...).
    """
    if not batch:
        raise ValueError('retrieval_collate got an empty batch')
    items = [b['inputs'] for b in batch]
    inputs = {}
    video_key = next((k for k in ('imgs', 'video_prefix') if k in items[0]), 'video_feat')
    videos = [it[video_key] for it in items]
    shapes = {tuple(v.shape[1:]) for v in videos}
    if len(shapes) > 1:
        vids = [b['data_samples'].get('vid') for b in batch]
        raise ValueError(f'retrieval_collate: {video_key} of the batch have different frame '
                         f'shapes {sorted(shapes)} (vids {vids}); resize/crop to one size')
    inputs[video_key], inputs['video_mask'] = pad_sequences(videos)

    # Pad every caption to the longest one of the batch: pad rows (C_i, L_i) -> (C_i, L).
    max_len = max(it['text_tokens'].shape[1] for it in items)
    tokens, masks = [], []
    for it in items:
        t, m = it['text_tokens'], it['text_mask'].bool()
        pad = max_len - t.shape[1]
        tokens.append(torch.nn.functional.pad(t.long(), (0, pad)))
        masks.append(torch.nn.functional.pad(m, (0, pad), value=False))
    inputs['text_tokens'] = torch.cat(tokens)
    inputs['text_mask'] = torch.cat(masks)
    counts = torch.tensor([len(t) for t in tokens])
    inputs['text_video_index'] = torch.repeat_interleave(torch.arange(len(batch)), counts)
    return dict(inputs=inputs, data_samples=[b['data_samples'] for b in batch])
