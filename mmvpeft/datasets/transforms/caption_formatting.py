"""Text context for generation (a question, a long transcript in chunks) and packing."""
from typing import Optional, Sequence

import numpy as np
import open_clip
from mmcv.transforms import BaseTransform

from mmvpeft.registry import TRANSFORMS
from .retrieval_formatting import PackRetrievalInputs, _as_tensor


@TRANSFORMS.register_module()
class CLIPTokenizeChunks(BaseTransform):
    """Tokenises a text of any length into chunks that fit the CLIP text tower.

    The text's BPE ids are cut into pieces of ``context_length - 2`` and each gets SOT/EOT,
    so a transcript longer than CLIP's context is encoded chunk by chunk; a question is one
    chunk. Required key: ``key`` (a str). Added keys: ``context_tokens`` (C, L) int64 and
    ``context_mask`` (C, L) bool, L = the longest chunk (<= ``context_length``).

    Args:
        key: the text to tokenise (``'transcript'``, ``'question'``).
        context_length: CLIP's 77, or a tiny model's.
        max_chunks: keep at most this many chunks (the start of the text).
        model_name: open_clip model whose tokenizer to use.
    """

    def __init__(self, key: str = 'transcript', context_length: int = 77,
                 max_chunks: Optional[int] = None, model_name: str = 'ViT-B-32'):
        if context_length < 3:
            raise ValueError(f'context_length must be >= 3, got {context_length}')
        self.key, self.context_length, self.max_chunks = key, context_length, max_chunks
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.sot, self.eot = self.tokenizer.sot_token_id, self.tokenizer.eot_token_id

    def transform(self, results: dict) -> dict:
        text = results.get(self.key)
        if not isinstance(text, str) or not text.strip():
            raise KeyError(f'CLIPTokenizeChunks needs a non-empty str in results["{self.key}"]'
                           f' (vid={results.get("vid")!r}), got {text!r:.60}')
        ids = self.tokenizer.encode(text)  # cleans and lower-cases as CLIP does
        step = self.context_length - 2
        chunks = [ids[i:i + step] for i in range(0, len(ids), step)] or [[]]
        if self.max_chunks is not None:
            chunks = chunks[:self.max_chunks]
        length = max(len(c) for c in chunks) + 2
        tokens = np.zeros((len(chunks), length), dtype=np.int64)
        mask = np.zeros((len(chunks), length), dtype=bool)
        for i, c in enumerate(chunks):
            row = [self.sot] + c + [self.eot]
            tokens[i, :len(row)], mask[i, :len(row)] = row, True
        results['context_tokens'], results['context_mask'] = tokens, mask
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(key={self.key!r}, context_length={self.context_length}, '
                f'max_chunks={self.max_chunks})')


def pack_context(results: dict, inputs: dict) -> dict:
    """Copy the text context of :class:`CLIPTokenizeChunks` (``context_tokens`` /
    ``context_mask``, (C, L) or one chunk (L,)) into ``inputs`` as (C, L) int64 / bool, when
    the pipeline made one."""
    if 'context_tokens' in results:
        tokens = _as_tensor(results['context_tokens']).long()
        mask = _as_tensor(results['context_mask']).bool()
        if tokens.ndim == 1:
            tokens, mask = tokens[None], mask[None]
        inputs['context_tokens'], inputs['context_mask'] = tokens, mask
    return inputs


@TRANSFORMS.register_module()
class PackCaptionInputs(PackRetrievalInputs):
    """:class:`PackRetrievalInputs` plus the optional text context.

    Adds ``inputs['context_tokens'] (C, L)`` / ``inputs['context_mask']`` when the pipeline
    made them (:class:`CLIPTokenizeChunks`). ``text_tokens`` are the target captions
    (training: one; test: all references, unused by the model).
    """

    def __init__(self, meta_keys: Sequence[str] = ('vid', 'video_index', 'captions',
                                                    'caption_ids', 'video_path', 'frame_inds',
                                                    'transcript', 'question')) -> None:
        super().__init__(meta_keys)

    def transform(self, results: dict) -> dict:
        packed = super().transform(results)
        pack_context(results, packed['inputs'])
        return packed
