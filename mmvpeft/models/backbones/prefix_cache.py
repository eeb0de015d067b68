"""The frozen prefix of a PETL tower, and the key that says which cache holds it.

When the first block any PETL method touches is block ``k`` of a frozen tower, the hidden
states entering block ``k`` depend only on the frame (or the query's tokens): everything
before it (patch / token embedding, ``ln_pre``, blocks ``0..k-1``) is frozen, in eval mode and
per frame (vision) or causal (text). Those states can be computed once and stored
(``tools/build_prefix_cache.py``); training then runs blocks ``k..`` from the cache and gives
the same losses and gradients (tested).

A cache folder holds ``meta.json`` with the key below and

- video (``CACHE/video``): per video a fixed frame grid, ``{vid}.npy`` ``(G, N, D)`` (the
  states of every decoded frame, or of frames at a fixed rate) and ``{vid}.json`` (the grid's
  frame indices, the video's frame count and fps). The data pipeline's sampler chooses frames
  among the grid (:class:`~mmvpeft.datasets.transforms.prefix_loading.LoadPrefixCache`), so
  one cache serves random training and uniform test sampling.
- text (``CACHE/text``): per distinct token sequence ``{sha1}.npy`` ``(L, W)``, valid tokens
  only, named by :func:`text_key` of its token ids. The text tower looks its inputs up by
  their tokens (:class:`TextPrefixStore`), so one query per item, several captions per video
  and a transcript in chunks are all served without any change to the batch.

The key names everything the states depend on: the tower kind, the architecture
(``model_name`` or a hash of ``model_cfg``), the pretrained tag or file hash, a sha256 of the
prefix weights themselves (embeddings and every block before ``k``, parameters and buffers),
the image size, ``k``, the storage dtype, the cache format and the data side (decoding,
resizing and cropping for video). A cache whose key differs from the model's or the
pipeline's is refused, naming the field.
"""
import hashlib
import json
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import nn

from mmvpeft.utils.fileio import json_plain
from mmvpeft.utils.fingerprint import _update_with_tensor, base_source

META_FILE = 'meta.json'
# 2: frame grids per video and token-keyed text states (1: sampled clips, one file per qid).
CACHE_FORMAT = 2
# Fields the model checks (the data side checks 'frames').
MODEL_FIELDS = ('format', 'tower', 'source', 'image_size', 'start_block', 'prefix_sha256')


class PrefixCacheError(ValueError):
    """A prefix cache is missing, stale or does not match the model or the pipeline."""


def prefix_start(tower: nn.Module) -> int:
    """Index of the first block whose computation can change during training.

    That is the first block with a PETL site registered or a trainable parameter; 0 if a
    parameter that runs before the blocks trains (embeddings, ``ln_pre``, a tower that is not
    frozen); ``len(blocks)`` if nothing in the blocks changes (a linear probe).
    """
    if not getattr(tower, 'frozen', False):
        return 0
    if any(p.requires_grad for p in tower.prefix_parameters()):
        return 0
    for i, block in enumerate(tower.blocks()):
        if any(getattr(block, 'peft_sites', {}).values()):
            return i
        if any(p.requires_grad for p in block.parameters()):
            return i
    return len(tower.blocks())


def methods_at(tower: nn.Module, index: int) -> List[str]:
    """Names of the PETL methods acting on block ``index`` (for messages)."""
    names = [repr(m) for m in getattr(tower, 'peft_methods', ())
             if index in (m.block_indices or [])]
    if not names:
        names = [repr(m) for m in getattr(tower, 'peft_methods', ())] or ['full fine-tuning']
    return names


def require_prefix_start(tower: nn.Module) -> int:
    """``prefix_start(tower)``, or a :class:`PrefixCacheError` when it is 0."""
    k = prefix_start(tower)
    if k == 0:
        why = ('the tower is not frozen' if not getattr(tower, 'frozen', False) else
               f'{", ".join(methods_at(tower, 0))} touch(es) block 0 or the embeddings')
        raise PrefixCacheError(
            f'no frozen-prefix cache is possible for this {tower.tower_kind} tower: {why}, so '
            'every block changes during training. Methods that leave the first blocks '
            'frozen (READ / token mixing / LoRA on the last blocks) can use one.')
    return k


def prefix_key(tower: nn.Module, source_cfg: Optional[dict], k: int) -> Dict:
    """The model side of a cache key for ``tower`` cut before block ``k``.

    Args:
        tower: a PEFT tower (``CLIPVisionBackbone`` / ``CLIPTextBackbone``).
        source_cfg: its ``model_name`` / ``pretrained`` / ``model_cfg`` arguments.
        k: the first block run from the cache.
    """
    h = hashlib.sha256()
    tensors = [(f'prefix.{n}', p) for n, p in tower.named_prefix_parameters()]
    # The tower's own buffers (pixel mean / std, the causal mask) run before block k too.
    tensors += [(f'buffer.{n}', b) for n, b in tower.named_buffers(recurse=False)]
    for i, block in enumerate(tower.blocks()[:k]):  # every frozen block before the cut
        tensors += [(f'blocks.{i}.{n}', p) for n, p in block.named_parameters()]
        tensors += [(f'blocks.{i}.{n}', b) for n, b in block.named_buffers()]
    for name, t in tensors:
        _update_with_tensor(h, name, t)
    h.update(f'normalize={getattr(tower, "normalize", None)}'.encode())
    source = base_source(dict(source_cfg or {}))
    source.pop('pretrained_path', None)  # the file hash identifies it; paths may move
    image_size = getattr(tower, 'image_size', None)
    return dict(format=CACHE_FORMAT, tower=tower.tower_kind, source=source,
                image_size=list(image_size) if image_size is not None else None,
                start_block=int(k), prefix_sha256=h.hexdigest())


def read_meta(cache_dir: str) -> Dict:
    path = osp.join(cache_dir, META_FILE)
    if not osp.isfile(path):
        raise PrefixCacheError(f'{path} not found: {cache_dir} is not a prefix cache; build it '
                               'with tools/build_prefix_cache.py CONFIG CACHE_DIR')
    with open(path, encoding='utf-8') as f:
        return json.load(f)



def check_meta(meta: Dict, expected: Dict, fields, where: str) -> None:
    """Raise :class:`PrefixCacheError` naming the first of ``fields`` that differs."""
    for field in fields:
        if json_plain(meta.get(field)) != json_plain(expected.get(field)):
            raise PrefixCacheError(
                f'stale or mismatched prefix cache {where}: {field} is '
                f'{meta.get(field)!r} in the cache but {expected.get(field)!r} for this '
                f'{"model" if field in MODEL_FIELDS else "pipeline"}. Rebuild it with '
                'tools/build_prefix_cache.py (into a new folder or with --overwrite).')


def text_key(ids) -> str:
    """Name of the cache file of one token sequence: sha1 of its valid ids (int64)."""
    return hashlib.sha1(np.asarray(ids, dtype=np.int64).tobytes()).hexdigest()


class TextPrefixStore:
    """The text states of a prefix cache, looked up by token ids.

    Files are read on first use and kept in memory (least recently used first out) up to
    ``max_bytes``: a training set's queries are few and small next to its videos.

    Args:
        cache_dir (str): ``CACHE/text``.
        max_bytes (int): memory kept for states already read.
    """

    def __init__(self, cache_dir: str, max_bytes: int = 256 * 2**20):
        self.cache_dir, self.max_bytes = cache_dir, int(max_bytes)
        self._mem: 'OrderedDict[str, np.ndarray]' = OrderedDict()
        self._bytes = 0

    def path(self, key: str) -> str:
        return osp.join(self.cache_dir, key + '.npy')

    def get(self, ids) -> np.ndarray:
        """(L, W) states of the valid token ids ``ids`` (L of them)."""
        key = text_key(ids)
        states = self._mem.get(key)
        if states is not None:
            self._mem.move_to_end(key)
            return states
        path = self.path(key)
        if not osp.isfile(path):
            raise PrefixCacheError(
                f'prefix cache file {path} not found for the token ids '
                f'{[int(i) for i in ids[:12]]}'
                f'{"..." if len(ids) > 12 else ""}: this text was not in the data the cache '
                'was built from (or was tokenised differently); rerun '
                'tools/build_prefix_cache.py (it resumes)')
        states = np.load(path)
        if len(states) != len(ids):
            raise PrefixCacheError(f'{path} holds {len(states)} token states for '
                                   f'{len(ids)} tokens: a corrupt cache; rebuild it')
        self._mem[key] = states
        self._bytes += states.nbytes
        while self._bytes > self.max_bytes and len(self._mem) > 1:
            self._bytes -= self._mem.popitem(last=False)[1].nbytes
        return states

    def lookup(self, tokens: torch.Tensor, mask: torch.Tensor, dtype: torch.dtype
               ) -> torch.Tensor:
        """(B, L, W) states of a batch of (B, L) token rows, zeros at padding."""
        mask = mask.bool()
        ids = tokens.detach().cpu().numpy()
        valid = mask.cpu().numpy()
        rows = [self.get(ids[i][valid[i]]) for i in range(len(ids))]
        width = rows[0].shape[-1]
        out = torch.zeros(tokens.shape + (width, ), dtype=dtype)
        for i, states in enumerate(rows):
            out[i][mask[i].cpu()] = torch.from_numpy(np.asarray(states)).to(dtype)
        return out.to(tokens.device)
