"""Pack one video and its captions into ``dict(inputs=..., data_samples=...)`` for retrieval."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from mmvpeft.registry import TRANSFORMS


def _as_tensor(value) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.from_numpy(
        np.ascontiguousarray(value))


@TRANSFORMS.register_module()
class PackRetrievalInputs(BaseTransform):
    """Split a retrieval sample (one video, ``C`` captions) into model inputs and metadata.

    Required keys: ``imgs`` uint8 ``(T, 1, 3, H, W)`` (``LoadVideoFrames`` + ``FormatVideo``)
    or ``(T, 3, H, W)``, or pre-extracted ``video_feat (T, D)``; ``text_tokens (C, L)`` and
    ``text_mask (C, L)`` (``CLIPTokenize(multi=True)``); ``vid``, ``captions``,
    ``caption_ids``.

    Returns:
        dict: ``inputs`` with ``imgs (T, 3, H, W)`` uint8 (or ``video_feat``, or
        ``video_prefix (T, K, N, D)`` from a frozen-prefix cache),
        ``text_tokens (C, L)`` int64, ``text_mask (C, L)`` bool; ``data_samples`` a dict of
        the present ``meta_keys``.

    Args:
        meta_keys: Keys copied into ``data_samples``; ``vid``, ``captions`` and
            ``caption_ids`` are required.
    """

    REQUIRED_META = ('vid', 'captions', 'caption_ids')

    def __init__(self, meta_keys: Sequence[str] = ('vid', 'video_index', 'captions',
                                                    'caption_ids', 'video_path',
                                                    'frame_inds')) -> None:
        self.meta_keys = tuple(meta_keys)
        missing = [k for k in self.REQUIRED_META if k not in self.meta_keys]
        if missing:
            raise ValueError(f'meta_keys must include {missing}')

    def transform(self, results: dict) -> dict:
        ident = f' (vid={results.get("vid")!r})'
        inputs = {}
        if 'imgs' in results:
            imgs = _as_tensor(results['imgs'])
            # LoadVideoFrames keeps the clip layout (T, 1, ...) so FormatVideo applies.
            if imgs.ndim == 5:
                if imgs.shape[1] != 1:
                    raise ValueError(f'PackRetrievalInputs expects one frame per clip, got imgs '
                                     f'{tuple(imgs.shape)}{ident}')
                imgs = imgs[:, 0]
            if imgs.ndim != 4 or imgs.shape[1] != 3:
                raise ValueError(f'imgs must be (T, 3, H, W) after FormatVideo, got '
                                 f'{tuple(imgs.shape)}{ident}')
            inputs['imgs'] = imgs
        elif 'video_prefix' in results:  # a frozen-prefix cache: (T, K, N, D) states
            inputs['video_prefix'] = _as_tensor(results['video_prefix'])
        elif 'video_feat' in results:
            inputs['video_feat'] = _as_tensor(results['video_feat'])
        else:
            raise KeyError(f'PackRetrievalInputs: no video input{ident}; the pipeline must add '
                           '"imgs" (LoadVideoFrames + FormatVideo) or "video_feat"')
        if 'text_tokens' not in results or 'text_mask' not in results:
            raise KeyError(f'PackRetrievalInputs: no text input{ident}; the pipeline must add '
                           '"text_tokens"/"text_mask" (CLIPTokenize(key="captions", '
                           'multi=True))')
        tokens, mask = _as_tensor(results['text_tokens']), _as_tensor(results['text_mask'])
        if tokens.ndim != 2 or mask.shape != tokens.shape:
            raise ValueError(f'text_tokens/text_mask must both be (C, L), got '
                             f'{tuple(tokens.shape)} and {tuple(mask.shape)}{ident}; '
                             'tokenise with CLIPTokenize(multi=True)')
        inputs['text_tokens'], inputs['text_mask'] = tokens.long(), mask.bool()
        for key in self.REQUIRED_META:
            if key not in results:
                raise KeyError(f'PackRetrievalInputs: missing "{key}"{ident}')
        if len(results['caption_ids']) != len(tokens):
            raise ValueError(f'{len(results["caption_ids"])} caption_ids but {len(tokens)} '
                             f'tokenised captions{ident}')
        meta = {k: results[k] for k in self.meta_keys if k in results}
        return dict(inputs=inputs, data_samples=meta)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
