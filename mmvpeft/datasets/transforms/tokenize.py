"""Tokenises a text query with the open_clip tokenizer of a CLIP model."""
from typing import Optional

import numpy as np
import open_clip
from mmcv.transforms import BaseTransform

from mmvpeft.registry import TRANSFORMS


@TRANSFORMS.register_module()
class CLIPTokenize(BaseTransform):
    """Tokenises ``results['query']`` for a CLIP text tower.

    Required keys: ``query`` (str).
    Added keys: ``text_tokens`` (int64 ndarray (L,)) and ``text_mask`` (bool
    ndarray (L,), True up to and including the EOT token).

    Queries longer than the context length are truncated with the EOT token
    kept as the last token (open_clip's behaviour).

    Args:
        model_name (str): open_clip model whose tokenizer to use. The default
            CLIP BPE vocabulary ships with open_clip, so this works offline.
        context_length (int, optional): Maximum length L including SOT/EOT;
            defaults to the model's (77 for CLIP).
        trim_padding (bool): Drop the trailing padding so L is the query's own
            length and a collate function can pad per batch. Defaults to False
            (fixed length, stackable by the default collate).
    """

    def __init__(self,
                 model_name: str = 'ViT-B-32',
                 context_length: Optional[int] = None,
                 trim_padding: bool = False):
        self.model_name = model_name
        self.tokenizer = open_clip.get_tokenizer(model_name, context_length=context_length)
        self.eot_token_id = getattr(self.tokenizer, 'eot_token_id', None)
        if self.eot_token_id is None:
            raise ValueError(f"the tokenizer of '{model_name}' ({type(self.tokenizer).__name__}) "
                             'has no EOT token; CLIPTokenize needs a CLIP-style tokenizer')
        self.context_length = context_length or self.tokenizer.context_length
        self.trim_padding = trim_padding

    def transform(self, results: dict) -> dict:
        if 'query' not in results:
            raise KeyError("CLIPTokenize needs results['query'] (the text query)")
        query = results['query']
        if not isinstance(query, str):
            raise TypeError(f"results['query'] must be a str, got {type(query).__name__}")
        tokens = self.tokenizer([query], context_length=self.context_length)[0].numpy()
        # The first EOT ends the query; everything after it is padding.
        length = int(np.flatnonzero(tokens == self.eot_token_id)[0]) + 1
        mask = np.arange(len(tokens)) < length
        if self.trim_padding:
            tokens, mask = tokens[:length], mask[:length]
        results['text_tokens'] = tokens.astype(np.int64)
        results['text_mask'] = mask
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(model_name={self.model_name!r}, '
                f'context_length={self.context_length}, trim_padding={self.trim_padding})')
