"""Pack one video question into ``dict(inputs=..., data_samples=...)`` for video QA."""
from typing import Sequence

from mmcv.transforms import BaseTransform

from mmvpeft.registry import TRANSFORMS
from .caption_formatting import pack_context
from .retrieval_formatting import _as_tensor


@TRANSFORMS.register_module()
class PackQAInputs(BaseTransform):
    """Split a QA sample (one video, one question) into model inputs and metadata.

    Required keys: ``imgs`` uint8 ``(T, K, 3, H, W)`` (``LoadVideoFrames`` +
    ``FormatVideo``; K frames per clip, usually 1) or ``video_feat (T, D)``;
    ``text_tokens (L,)`` and ``text_mask (L,)`` (``CLIPTokenize(key='question')``);
    ``qid``, ``question``, ``answer``. For QA as generation the pipeline tokenises the
    *answer* as ``text_tokens`` (the decoder's target) and the question as the context
    (``CLIPTokenizeChunks(key='question')``: ``context_tokens`` / ``context_mask`` (C, L)),
    which is packed too.

    Returns:
        dict: ``inputs`` with ``imgs`` (or ``video_feat``), ``text_tokens`` int64 and
        ``text_mask`` bool, and ``context_tokens`` / ``context_mask`` when present (batch
        them with ``mmvpeft.moment_collate``); ``data_samples``
        a dict of the present ``meta_keys``.

    Args:
        meta_keys: Keys copied into ``data_samples``; ``qid``, ``question`` and
            ``answer`` are required.
    """

    REQUIRED_META = ('qid', 'question', 'answer')

    def __init__(self, meta_keys: Sequence[str] = ('qid', 'vid', 'question', 'answer',
                                                    'question_type', 'answer_label',
                                                    'video_path', 'frame_inds')) -> None:
        self.meta_keys = tuple(meta_keys)
        missing = [k for k in self.REQUIRED_META if k not in self.meta_keys]
        if missing:
            raise ValueError(f'meta_keys must include {missing}')

    def transform(self, results: dict) -> dict:
        ident = f' (qid={results.get("qid")!r})'
        inputs = {}
        if 'imgs' in results:
            imgs = _as_tensor(results['imgs'])
            if imgs.ndim == 4:
                imgs = imgs[:, None]
            if imgs.ndim != 5 or imgs.shape[2] != 3:
                raise ValueError(f'imgs must be (T, K, 3, H, W) after FormatVideo, got '
                                 f'{tuple(imgs.shape)}{ident}')
            inputs['imgs'] = imgs
        elif 'video_prefix' in results:  # a frozen-prefix cache: (T, K, N, D) states
            inputs['video_prefix'] = _as_tensor(results['video_prefix'])
        elif 'video_feat' in results:
            inputs['video_feat'] = _as_tensor(results['video_feat'])
        else:
            raise KeyError(f'PackQAInputs: no video input{ident}; the pipeline must add "imgs"'
                           ' (LoadVideoFrames + FormatVideo) or "video_feat"')
        if 'text_tokens' not in results or 'text_mask' not in results:
            raise KeyError(f'PackQAInputs: no question tokens{ident}; the pipeline must add '
                           '"text_tokens"/"text_mask" (CLIPTokenize(key="question"))')
        tokens, mask = _as_tensor(results['text_tokens']), _as_tensor(results['text_mask'])
        if tokens.ndim != 1 or mask.shape != tokens.shape:
            raise ValueError(f'text_tokens/text_mask must both be (L,), got '
                             f'{tuple(tokens.shape)} and {tuple(mask.shape)}{ident}')
        inputs['text_tokens'], inputs['text_mask'] = tokens.long(), mask.bool()
        pack_context(results, inputs)  # QA as generation: the question is the context
        for key in self.REQUIRED_META:
            if key not in results:
                raise KeyError(f'PackQAInputs: missing "{key}"{ident}')
        meta = {k: results[k] for k in self.meta_keys if k in results}
        return dict(inputs=inputs, data_samples=meta)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
