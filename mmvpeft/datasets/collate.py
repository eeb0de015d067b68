"""Collate functions, named by the shape of the batch they build.

The layouts are those of the data contract (:mod:`mmvpeft.datasets.transforms.formatting`):
every video input keeps its axes, ``imgs (T_i, K, 3, H, W)`` per item becomes
``imgs (B, T, K, 3, H, W)``, right-padded on ``T`` with ``video_mask (B, T)``.

- :func:`video_query_collate`: one video and one query per item (grounding, highlight
  detection, QA); text ``(B, L)``.
- :func:`video_captions_collate`: one video and ``C_i`` captions per item (retrieval,
  captioning); the captions of the batch are concatenated to ``(sum C_i, L)`` with
  ``text_video_index``.
- Both add the optional text context (a transcript or question in chunks) as
  ``context_tokens (B, C, L)`` when the items have one (:func:`collate_context`).

Configs name them ``collate_fn=dict(type='mmvpeft.video_query_collate')``; the task names of
older configs (``moment_collate``, ``retrieval_collate``, ``caption_collate``) are registered
as aliases of the same functions.
"""
from typing import List

import torch
import torch.nn.functional as F

from mmvpeft.registry import FUNCTIONS

VIDEO_KEYS = ('video_feat', 'imgs', 'video_prefix')


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


def _idents(batch: List[dict]) -> list:
    return [{k: b['data_samples'][k] for k in ('qid', 'vid') if k in b['data_samples']}
            for b in batch]


def collate_video(batch: List[dict], inputs: dict, name: str) -> dict:
    """Pad the items' video inputs (those of ``imgs``, ``video_feat``, ``video_prefix`` the
    first item has, each ``(T_i, ...)``) to ``(B, T, ...)`` and add ``video_mask (B, T)``.

    Raises:
        KeyError: an item has no video input, or not the same one as the first item.
        ValueError: the items' frames (or feature widths) differ beyond ``T``.
    """
    items = [b['inputs'] for b in batch]
    keys = [k for k in VIDEO_KEYS if k in items[0]]
    if not keys:
        raise KeyError(f'{name}: item {_idents(batch)[0]} has no video input '
                       f'(one of {VIDEO_KEYS})')
    for key in keys:
        missing = [i for i, it in enumerate(items) if key not in it]
        if missing:
            raise KeyError(f'{name}: items {[_idents(batch)[i] for i in missing]} have no '
                           f'"{key}" while others in their batch do')
        shapes = {tuple(it[key].shape[1:]) for it in items}
        if len(shapes) > 1:
            raise ValueError(f'{name}: {key} of the batch have different frame shapes '
                             f'{sorted(shapes)} (items {_idents(batch)}); resize/crop to one '
                             'size')
        inputs[key], inputs['video_mask'] = pad_sequences([it[key] for it in items])
    return inputs


@FUNCTIONS.register_module(name=['video_query_collate', 'moment_collate'])
def video_query_collate(batch: List[dict]) -> dict:
    """Collate items of one video and one query each (``PackMomentInputs``,
    ``PackQAInputs``).

    Returns:
        dict: ``inputs`` with ``video_feat (B, T, Dv)``, ``imgs (B, T, K, 3, H, W)`` or
        ``video_prefix (B, T, K, N, D)`` (a frozen-prefix cache) and ``video_mask (B, T)``;
        ``text_prefix (B, L, W)``, ``text_feat (B, L, Dt)`` or ``text_tokens (B, L)`` and
        ``text_mask (B, L)``; ``context_tokens`` / ``context_mask`` (B, C, L) when the items
        have a text context (:func:`collate_context`); ``data_samples``: list of B meta
        dicts.
    """
    if not batch:
        raise ValueError('video_query_collate got an empty batch')
    inputs = collate_video(batch, {}, 'video_query_collate')
    keys = batch[0]['inputs'].keys()
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


@FUNCTIONS.register_module(name=['video_captions_collate', 'retrieval_collate',
                                 'caption_collate'])
def video_captions_collate(batch: List[dict]) -> dict:
    """Collate items of one video and ``C_i`` captions each (``PackRetrievalInputs``,
    ``PackCaptionInputs``).

    Captions of all videos are concatenated into one text batch; ``text_video_index`` says
    which video (row of ``imgs``) each caption describes. In retrieval training every item is
    one (video, caption) pair, so ``C == B`` and ``text_video_index == arange(B)``; in test
    mode each item is a video with all its captions.

    Args:
        batch: B dicts ``{'inputs': {'imgs' (T_i, K, 3, H, W) uint8 | 'video_feat' (T_i, D)
            | 'video_prefix' (T_i, K, N, D), 'text_tokens' (C_i, L_i), 'text_mask'
            (C_i, L_i), optional 'context_tokens' / 'context_mask'}, 'data_samples': dict}``.

    Returns:
        dict: ``inputs`` with ``imgs (B, T, K, 3, H, W)`` uint8 (or ``video_feat (B, T, D)``
        / ``video_prefix``), ``video_mask (B, T)`` bool (True = real frame; videos with fewer
        frames are zero-padded), ``text_tokens (C, L)`` int64 and ``text_mask (C, L)`` bool
        (right-padded to the longest caption, ``C = sum C_i``), ``text_video_index (C,)``
        int64, and ``context_tokens`` / ``context_mask`` ``(B, C', L')`` when the items have a
        text context; ``data_samples``: the B meta dicts (``vid``, ``captions``,
        ``caption_ids``, ...).
    """
    if not batch:
        raise ValueError('video_captions_collate got an empty batch')
    items = [b['inputs'] for b in batch]
    inputs = collate_video(batch, {}, 'video_captions_collate')
    # Pad every caption to the longest one of the batch: pad rows (C_i, L_i) -> (C_i, L).
    max_len = max(it['text_tokens'].shape[1] for it in items)
    tokens, masks = [], []
    for it in items:
        t, m = it['text_tokens'], it['text_mask'].bool()
        pad = max_len - t.shape[1]
        tokens.append(F.pad(t.long(), (0, pad)))
        masks.append(F.pad(m, (0, pad), value=False))
    inputs['text_tokens'] = torch.cat(tokens)
    inputs['text_mask'] = torch.cat(masks)
    counts = torch.tensor([len(t) for t in tokens])
    inputs['text_video_index'] = torch.repeat_interleave(torch.arange(len(batch)), counts)
    return collate_context(batch, dict(inputs=inputs,
                                       data_samples=[b['data_samples'] for b in batch]))


def collate_context(batch: List[dict], out: dict) -> dict:
    """Add the items' optional text context (a question or transcript in chunks, from
    ``CLIPTokenizeChunks``) to a collated batch ``out``.

    Adds ``context_tokens (B, C, L)`` int64 and ``context_mask (B, C, L)`` bool, padded with
    empty chunks and masked tokens, when the items have ``context_tokens (C_i, L_i)``.

    Raises:
        KeyError: some items of the batch have a context and others not.
    """
    items = [b['inputs'] for b in batch]
    has = ['context_tokens' in it for it in items]
    if not any(has):
        return out
    if not all(has):
        raise KeyError(f'item {_idents(batch)[has.index(False)]} has no context_tokens while '
                       'others in its batch do')
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


# The task names of older configs and code: the same functions.
moment_collate = video_query_collate
retrieval_collate = video_captions_collate
caption_collate = video_captions_collate

__all__ = ['pad_sequences', 'collate_video', 'collate_context', 'video_query_collate',
           'video_captions_collate', 'moment_collate', 'retrieval_collate', 'caption_collate']
