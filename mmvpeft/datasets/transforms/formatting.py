"""The data contract of mmvpeft, and the ``Pack*`` transforms that end every pipeline.

Every task (grounding, highlight detection, retrieval, captioning, summarization, QA) follows
this one contract, from the dataset to the model. A test runs one item of every demo config
through its pipelines and collate and checks it (``tests/datasets/test_collate.py``).

**Data item** (what a dataset's ``get_data_info`` returns; a dict):

- identity: ``vid`` (str, the video), ``qid`` (a query: grounding, QA), ``video_index``;
- where the data is: ``video_path`` (a video file), ``frame_dir`` (extracted frames),
  ``data_root``; paths travel in the item, pipelines are never rewritten per dataset;
- grounding: ``query`` (str), ``duration`` (s), ``gt_windows`` ``(M, 2)`` seconds,
  ``saliency_scores``, ``relevant_clip_ids``;
- retrieval / captioning: ``captions`` (list of ``C`` str), ``caption_ids``;
- text context: ``transcript`` (summarization), ``question`` (QA); QA also ``answer``,
  ``answer_label``, ``question_type``.

**Keys the transforms add** (per item; no batch axis):

- ``imgs``: video frames, ``(T, K, H, W, 3)`` uint8 RGB from the loader
  (:mod:`.loading`), ``(T, K, 3, H, W)`` uint8 tensor after ``FormatVideo``
  (:mod:`.processing`). ``T`` time steps (clips or sampled frames) of ``K`` frames each;
  **K = 1 when frames, not clips, are sampled**. The ``K`` axis is kept all the way: no
  transform, collate or model drops it or adds it back, and the vision backbone rejects any
  other rank.
- ``video_feat``: pre-extracted features ``(T, D)`` float32 (``LoadClipFeatures``).
- ``video_prefix``: frozen-prefix cache states ``(T, K, N, D)``, at the place of ``imgs``
  (``LoadPrefixCache``); ``text_prefix`` ``(L, W)`` likewise for a tokenised query.
- text is token ids plus a mask (:mod:`.text`): ``text_tokens`` int64 / ``text_mask`` bool,
  ``(L,)`` for one query or ``(C, L)`` for ``C`` captions; ``text_feat`` ``(L, D)`` for
  pre-extracted text features; an optional context (a transcript or question in chunks)
  ``context_tokens`` / ``context_mask`` ``(C, L)``.
- time axis: ``num_clips`` (= T), ``clip_len_eff`` (seconds per time step), ``frame_inds``.

**Packed item** (the ``Pack*`` transforms below): ``dict(inputs=..., data_samples=...)``,
``inputs`` the tensors above, ``data_samples`` a plain dict of metadata.

**Batch** (:mod:`mmvpeft.datasets.collate`, functions named by the batch's shape):
``imgs (B, T, K, 3, H, W)``, ``video_feat (B, T, D)`` or ``video_prefix (B, T, K, N, D)``,
with ``video_mask (B, T)`` (True = real time step; shorter videos are right-padded).
Text per batch shape: one query per item ``text_tokens (B, L)`` / ``text_mask (B, L)`` (or
``text_feat (B, L, D)``, ``text_prefix (B, L, W)``); several captions per video
``text_tokens (C, L)`` / ``text_mask (C, L)`` with ``text_video_index (C,)``; an optional text
context ``context_tokens (B, C, L)`` / ``context_mask (B, C, L)``.
"""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from mmvpeft.registry import TRANSFORMS

# Arrays the grounding model consumes; everything else listed in meta_keys travels as
# metadata.
INPUT_KEYS = ('video_feat', 'imgs', 'video_prefix', 'text_feat', 'text_tokens', 'text_mask',
              'text_prefix')
VIDEO_KEYS = ('imgs', 'video_feat', 'video_prefix')
IMGS_LAYOUT = '(T, K, 3, H, W) per item (K = 1 when frames, not clips, are sampled)'


def to_tensor(value) -> torch.Tensor:
    """A torch tensor of ``value`` (a tensor is returned as is; an array shares memory).

    Args:
        value (torch.Tensor | np.ndarray | Sequence | int | float): the data.

    Returns:
        torch.Tensor: same shape and dtype (NumPy's), contiguous when converted.
    """
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, (Sequence, int, float)) and not isinstance(value, str):
        return torch.as_tensor(np.asarray(value))
    raise TypeError(f'to_tensor: cannot convert {type(value).__name__} to a tensor')


def check_imgs(imgs: torch.Tensor, ident: str = '') -> torch.Tensor:
    """Check that one item's ``imgs`` follows the contract: ``(T, K, 3, H, W)``.

    Raises:
        ValueError: any other rank or channel count; the message names the layout and the
            item, and says which transform makes it.
    """
    if imgs.ndim != 5 or imgs.shape[2] != 3:
        raise ValueError(f'imgs must be {IMGS_LAYOUT}, got {tuple(imgs.shape)}{ident}; the '
                         'pipeline must end its video part with FormatVideo after a '
                         'loader of mmvpeft.datasets.transforms.loading')
    return imgs


def pack_video(results: dict, inputs: dict, ident: str, name: str) -> dict:
    """Copy the item's video input (``imgs``, else ``video_feat``, else ``video_prefix``)
    into ``inputs`` as a tensor, checking the ``imgs`` layout."""
    if 'imgs' in results:
        inputs['imgs'] = check_imgs(to_tensor(results['imgs']), ident)
    elif 'video_feat' in results:
        inputs['video_feat'] = to_tensor(results['video_feat'])
    elif 'video_prefix' in results:
        inputs['video_prefix'] = to_tensor(results['video_prefix'])
    else:
        raise KeyError(f'{name}: no video input{ident}; the pipeline must add "imgs" (a loader '
                       '+ FormatVideo), "video_feat" (LoadClipFeatures) or "video_prefix" '
                       '(LoadPrefixCache)')
    return inputs


def pack_context(results: dict, inputs: dict) -> dict:
    """Copy the text context of :class:`~.text.CLIPTokenizeChunks` (``context_tokens`` /
    ``context_mask``, (C, L) or one chunk (L,)) into ``inputs`` as (C, L) int64 / bool, when
    the pipeline made one."""
    if 'context_tokens' in results:
        tokens = to_tensor(results['context_tokens']).long()
        mask = to_tensor(results['context_mask']).bool()
        if tokens.ndim == 1:
            tokens, mask = tokens[None], mask[None]
        inputs['context_tokens'], inputs['context_mask'] = tokens, mask
    return inputs


def _ident(results: dict, key: str) -> str:
    return f' ({key}={results.get(key)!r})'


@TRANSFORMS.register_module()
class PackMomentInputs(BaseTransform):
    """Split a grounding / highlight sample into model inputs (tensors) and metadata.

    ``inputs`` gets whichever of ``video_feat (T, Dv)``, ``imgs (T, K, 3, H, W)``,
    ``video_prefix (T, K, N, D)``, ``text_feat (L, Dt)``, ``text_tokens (L,)``,
    ``text_mask (L,)``, ``text_prefix (L, W)`` are present (batch them with
    ``video_query_collate``). ``data_samples`` is a plain dict with the meta keys,
    ``gt_windows`` as ``(M, 2)`` seconds, ``clip_len`` set to the seconds one input row
    stands for (after any subsampling) and ``num_clips``.
    """

    def __init__(self, meta_keys=('qid', 'query', 'vid', 'duration', 'gt_windows',
                                  'saliency_scores', 'relevant_clip_ids', 'video_path',
                                  'clip_labels', 'label_windows', 'domain', 'video_feat_files',
                                  'text_feat_file')):
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        inputs = {key: to_tensor(results[key]) for key in INPUT_KEYS if key in results}
        if not any(k in inputs for k in VIDEO_KEYS):
            raise KeyError('PackMomentInputs: no video input; the pipeline must add '
                           '"video_feat" (LoadClipFeatures) or "imgs" (LoadVideoClips)')
        if not any(k in inputs for k in ('text_feat', 'text_tokens', 'text_prefix')):
            raise KeyError('PackMomentInputs: no text input; the pipeline must add '
                           '"text_feat" (LoadTextFeatures) or "text_tokens" (CLIPTokenize)')
        if 'imgs' in inputs:
            check_imgs(inputs['imgs'], _ident(results, 'qid'))
        meta = {k: results[k] for k in self.meta_keys if k in results}
        meta['clip_len'] = float(results.get('clip_len_eff', results.get('clip_len')))
        video = next(inputs[k] for k in ('video_feat', 'imgs', 'video_prefix') if k in inputs)
        meta['num_clips'] = int(len(video))
        return dict(inputs=inputs, data_samples=meta)

    def __repr__(self):
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'


class _PackWithMeta(BaseTransform):
    """``meta_keys`` handling shared by the retrieval, captioning and QA packers."""

    REQUIRED_META: tuple = ()
    IDENT_KEY = 'vid'

    def __init__(self, meta_keys: Sequence[str]) -> None:
        self.meta_keys = tuple(meta_keys)
        missing = [k for k in self.REQUIRED_META if k not in self.meta_keys]
        if missing:
            raise ValueError(f'meta_keys must include {missing}')

    def _meta(self, results: dict, ident: str) -> dict:
        for key in self.REQUIRED_META:
            if key not in results:
                raise KeyError(f'{type(self).__name__}: missing "{key}"{ident}')
        return {k: results[k] for k in self.meta_keys if k in results}

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'


@TRANSFORMS.register_module()
class PackRetrievalInputs(_PackWithMeta):
    """Split a retrieval sample (one video, ``C`` captions) into model inputs and metadata.

    Required keys: ``imgs`` uint8 ``(T, K, 3, H, W)`` (a loader + ``FormatVideo``; K = 1 for
    ``LoadVideoFrames``), or ``video_feat (T, D)``, or ``video_prefix (T, K, N, D)``;
    ``text_tokens (C, L)`` and ``text_mask (C, L)`` (``CLIPTokenize(multi=True)``); ``vid``,
    ``captions``, ``caption_ids``.

    Returns:
        dict: ``inputs`` with ``imgs (T, K, 3, H, W)`` uint8 (or ``video_feat`` /
        ``video_prefix``), ``text_tokens (C, L)`` int64, ``text_mask (C, L)`` bool (batch them
        with ``video_captions_collate``); ``data_samples`` a dict of the present
        ``meta_keys``.

    Args:
        meta_keys: Keys copied into ``data_samples``; ``vid``, ``captions`` and
            ``caption_ids`` are required.
    """

    REQUIRED_META = ('vid', 'captions', 'caption_ids')

    def __init__(self, meta_keys: Sequence[str] = ('vid', 'video_index', 'captions',
                                                    'caption_ids', 'video_path',
                                                    'frame_inds')) -> None:
        super().__init__(meta_keys)

    def transform(self, results: dict) -> dict:
        ident = _ident(results, 'vid')
        inputs = pack_video(results, {}, ident, type(self).__name__)
        if 'text_tokens' not in results or 'text_mask' not in results:
            raise KeyError(f'{type(self).__name__}: no text input{ident}; the pipeline must '
                           'add "text_tokens"/"text_mask" (CLIPTokenize(key="captions", '
                           'multi=True))')
        tokens, mask = to_tensor(results['text_tokens']), to_tensor(results['text_mask'])
        if tokens.ndim != 2 or mask.shape != tokens.shape:
            raise ValueError(f'text_tokens/text_mask must both be (C, L), got '
                             f'{tuple(tokens.shape)} and {tuple(mask.shape)}{ident}; '
                             'tokenise with CLIPTokenize(multi=True)')
        inputs['text_tokens'], inputs['text_mask'] = tokens.long(), mask.bool()
        meta = self._meta(results, ident)
        if len(results['caption_ids']) != len(tokens):
            raise ValueError(f'{len(results["caption_ids"])} caption_ids but {len(tokens)} '
                             f'tokenised captions{ident}')
        return dict(inputs=inputs, data_samples=meta)


@TRANSFORMS.register_module()
class PackCaptionInputs(PackRetrievalInputs):
    """:class:`PackRetrievalInputs` plus the optional text context.

    Adds ``inputs['context_tokens'] (C, L)`` / ``inputs['context_mask']`` when the pipeline
    made them (:class:`~.text.CLIPTokenizeChunks`). ``text_tokens`` are the target captions
    (training: one; test: all references, unused by the model). Batch with
    ``video_captions_collate``.
    """

    def __init__(self, meta_keys: Sequence[str] = ('vid', 'video_index', 'captions',
                                                    'caption_ids', 'video_path', 'frame_inds',
                                                    'transcript', 'question')) -> None:
        super().__init__(meta_keys)

    def transform(self, results: dict) -> dict:
        packed = super().transform(results)
        pack_context(results, packed['inputs'])
        return packed


@TRANSFORMS.register_module()
class PackQAInputs(_PackWithMeta):
    """Split a QA sample (one video, one question) into model inputs and metadata.

    Required keys: ``imgs`` uint8 ``(T, K, 3, H, W)`` (``LoadVideoFrames`` +
    ``FormatVideo``: K = 1) or ``video_feat (T, D)`` or ``video_prefix (T, K, N, D)``;
    ``text_tokens (L,)`` and ``text_mask (L,)`` (``CLIPTokenize(key='question')``);
    ``qid``, ``question``, ``answer``. For QA as generation the pipeline tokenises the
    *answer* as ``text_tokens`` (the decoder's target) and the question as the context
    (``CLIPTokenizeChunks(key='question')``: ``context_tokens`` / ``context_mask`` (C, L)),
    which is packed too.

    Returns:
        dict: ``inputs`` with ``imgs`` (or ``video_feat`` / ``video_prefix``),
        ``text_tokens`` int64 and ``text_mask`` bool, and ``context_tokens`` /
        ``context_mask`` when present (batch them with ``video_query_collate``);
        ``data_samples`` a dict of the present ``meta_keys``.

    Args:
        meta_keys: Keys copied into ``data_samples``; ``qid``, ``question`` and
            ``answer`` are required.
    """

    REQUIRED_META = ('qid', 'question', 'answer')

    def __init__(self, meta_keys: Sequence[str] = ('qid', 'vid', 'question', 'answer',
                                                    'question_type', 'answer_label',
                                                    'video_path', 'frame_inds')) -> None:
        super().__init__(meta_keys)

    def transform(self, results: dict) -> dict:
        ident = _ident(results, 'qid')
        inputs = pack_video(results, {}, ident, type(self).__name__)
        if 'text_tokens' not in results or 'text_mask' not in results:
            raise KeyError(f'PackQAInputs: no question tokens{ident}; the pipeline must add '
                           '"text_tokens"/"text_mask" (CLIPTokenize(key="question"))')
        tokens, mask = to_tensor(results['text_tokens']), to_tensor(results['text_mask'])
        if tokens.ndim != 1 or mask.shape != tokens.shape:
            raise ValueError(f'text_tokens/text_mask must both be (L,), got '
                             f'{tuple(tokens.shape)} and {tuple(mask.shape)}{ident}')
        inputs['text_tokens'], inputs['text_mask'] = tokens.long(), mask.bool()
        pack_context(results, inputs)  # QA as generation: the question is the context
        return dict(inputs=inputs, data_samples=self._meta(results, ident))


__all__ = ['to_tensor', 'check_imgs', 'pack_video', 'pack_context', 'PackMomentInputs',
           'PackRetrievalInputs', 'PackCaptionInputs', 'PackQAInputs']
