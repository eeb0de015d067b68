"""Text transforms: CLIP tokenizers for a query, a list of captions, or a long text in chunks.

The contract's text is token ids plus a mask (see :mod:`.formatting`):

- :class:`CLIPTokenize`: one text -> ``text_tokens (L,)`` / ``text_mask (L,)``; with
  ``multi=True`` a list of ``C`` texts (a video's captions) -> ``(C, L)``.
- :class:`CLIPTokenizeChunks`: a text of any length (a transcript, a question) ->
  ``context_tokens (C, L)`` / ``context_mask (C, L)``, ``C`` chunks that each fit the CLIP
  text tower.
- :func:`check_text_lengths`: run by every dataset when it is built; texts the pipeline's
  tokenizers will cut give one warning per dataset with their count and the longest length.

Both use open_clip's tokenizer; the CLIP BPE vocabulary ships with open_clip, so they work
offline.
"""
import warnings
from typing import Iterable, List, Optional

import numpy as np
import open_clip
from mmcv.transforms import BaseTransform

from mmvpeft.registry import TRANSFORMS


@TRANSFORMS.register_module()
class CLIPTokenize(BaseTransform):
    """Tokenises ``results[key]`` (default ``'query'``) for a CLIP text tower.

    Required keys: ``key`` holding a str, or with ``multi=True`` a non-empty list/tuple of
    ``C`` str (e.g. a video's ``captions`` for retrieval).
    Added keys: ``text_tokens`` (int64 ndarray) and ``text_mask`` (bool ndarray, True up to
    and including each text's EOT token), of shape ``(L,)``, or ``(C, L)`` with ``multi``.
    With ``trim_padding`` the ``C`` rows are trimmed to the longest text, so shorter rows
    keep (masked) padding.

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
        key (str): The results key to tokenise.
        multi (bool): ``results[key]`` is a list of texts, tokenised to ``(C, L)``.
    """

    def __init__(self,
                 model_name: str = 'ViT-B-32',
                 context_length: Optional[int] = None,
                 trim_padding: bool = False,
                 key: str = 'query',
                 multi: bool = False):
        self.model_name = model_name
        self.key = key
        self.multi = bool(multi)
        self.tokenizer = open_clip.get_tokenizer(model_name, context_length=context_length)
        self.eot_token_id = getattr(self.tokenizer, 'eot_token_id', None)
        if self.eot_token_id is None:
            raise ValueError(f"the tokenizer of '{model_name}' ({type(self.tokenizer).__name__}) "
                             'has no EOT token; CLIPTokenize needs a CLIP-style tokenizer')
        self.context_length = context_length or self.tokenizer.context_length
        self.trim_padding = trim_padding

    def transform(self, results: dict) -> dict:
        key = self.key
        if key not in results:
            what = 'the text query' if key == 'query' else 'the text(s) to tokenise'
            raise KeyError(f"CLIPTokenize needs results['{key}'] ({what})")
        texts = results[key]
        if not self.multi:
            if not isinstance(texts, str):
                raise TypeError(f"results['{key}'] must be a str, got {type(texts).__name__}"
                                f'{_ident(results)} (multi=True tokenises a list)')
            texts = [texts]
        elif not isinstance(texts, (list, tuple)) or not texts or not all(
                isinstance(t, str) for t in texts):
            raise TypeError(f"results['{key}'] must be a non-empty list of str (multi=True), "
                            f'got {_describe(texts)}{_ident(results)}')
        tokens = self.tokenizer(list(texts), context_length=self.context_length).numpy()
        # The first EOT of a row ends its text; everything after it is padding.
        lengths = (tokens == self.eot_token_id).argmax(1) + 1
        mask = np.arange(tokens.shape[1])[None, :] < lengths[:, None]
        if self.trim_padding:
            keep = int(lengths.max())
            tokens, mask = tokens[:, :keep], mask[:, :keep]
        tokens = tokens.astype(np.int64)
        results['text_tokens'] = tokens if self.multi else tokens[0]
        results['text_mask'] = mask if self.multi else mask[0]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(model_name={self.model_name!r}, '
                f'context_length={self.context_length}, trim_padding={self.trim_padding}, '
                f'key={self.key!r}, multi={self.multi})')


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


def _describe(value) -> str:
    if isinstance(value, (list, tuple)):
        if not value:
            return f'an empty {type(value).__name__}'
        bad = next((v for v in value if not isinstance(v, str)), None)
        return f'a {type(value).__name__} holding a {type(bad).__name__}'
    return type(value).__name__


def _ident(results: dict) -> str:
    parts = [f'{k}={results[k]!r}' for k in ('qid', 'vid') if results.get(k) is not None]
    return f' ({", ".join(parts)})' if parts else ''


def _texts(data_list: Iterable[dict], key: str) -> List[str]:
    out = []
    for info in data_list:
        value = info.get(key)
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, (list, tuple)):
            out += [v for v in value if isinstance(v, str)]
    return out


def token_counter(tokenizer):
    """A function ``text -> number of BPE tokens`` (SOT/EOT not counted) for an open_clip
    tokenizer, None when it cannot encode a single text.

    For the CLIP tokenizer the count skips ftfy and HTML unescaping on printable ASCII text
    without ``&``, where they change nothing and cost about half of ``encode``; other texts
    go through ``encode``. Both give ``len(tokenizer.encode(text))`` (tested).
    """
    encode = getattr(tokenizer, 'encode', None)
    if encode is None:
        return None
    pat, bpe, byte_encoder = (getattr(tokenizer, k, None) for k in ('pat', 'bpe',
                                                                     'byte_encoder'))
    clean = getattr(getattr(tokenizer, 'clean_fn', None), '__name__', '')
    if clean != '_clean_lower' or pat is None or bpe is None or byte_encoder is None:
        return lambda text: len(encode(text))

    def count(text: str) -> int:
        if not (text.isascii() and text.isprintable() and '&' not in text):
            return len(encode(text))
        return sum(len(bpe(''.join(byte_encoder[b] for b in piece.encode('utf-8'))).split(' '))
                   for piece in pat.findall(' '.join(text.split()).lower()))

    return count


def check_text_lengths(data_list: List[dict], transforms, where: str) -> List[str]:
    """Warn once per tokenizer of the pipeline when texts of ``data_list`` are longer than
    it keeps: ``CLIPTokenize`` cuts at ``context_length`` tokens (SOT and EOT included),
    ``CLIPTokenizeChunks`` at ``max_chunks`` chunks.

    Args:
        data_list: the dataset's items (the tokenizer's ``key`` holds a str or a list).
        transforms: the dataset's built pipeline transforms.
        where: the annotation file (named in the warning).

    Returns:
        list: the warnings' texts (empty when nothing is cut).
    """
    messages = []
    for t in transforms:
        if isinstance(t, CLIPTokenize):
            key, tokenizer, limit = t.key, t.tokenizer, t.context_length
            knob = f'context_length={limit} of CLIPTokenize(key={key!r})'
        elif isinstance(t, CLIPTokenizeChunks) and t.max_chunks is not None:
            key, tokenizer = t.key, t.tokenizer
            limit = t.max_chunks * (t.context_length - 2) + 2
            knob = (f'max_chunks={t.max_chunks} x {t.context_length - 2} tokens of '
                    f'CLIPTokenizeChunks(key={key!r})')
        else:
            continue
        count = token_counter(tokenizer)
        texts = _texts(data_list, key)
        if count is None or not texts:
            continue
        lengths = {text: count(text) + 2 for text in set(texts)}  # + SOT, EOT
        cut = [text for text in texts if lengths[text] > limit]
        if not cut:
            continue
        longest = max(cut, key=lengths.get)
        msg = (f'{where}: {len(cut)} of {len(texts)} text(s) in "{key}" are longer than '
               f'the {limit} tokens the pipeline keeps ({knob}) and are cut; the longest is '
               f'{lengths[longest]} tokens ({longest[:60]!r}). Raise the limit (up to the '
               "text tower's context) or shorten the texts.")
        warnings.warn(msg, stacklevel=2)
        messages.append(msg)
    return messages
