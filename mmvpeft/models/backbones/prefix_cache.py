"""The frozen prefix of a PETL tower, and the key that says which cache holds it.

When the first block any PETL method touches is block ``k`` of a frozen tower, the hidden
states entering block ``k`` depend only on the frame (or the query's tokens): everything
before it (patch / token embedding, ``ln_pre``, blocks ``0..k-1``) is frozen, in eval mode and
per frame (vision) or causal (text). Those states can be computed once and stored
(``tools/build_prefix_cache.py``); training then runs blocks ``k..`` from the cache and gives
the same losses and gradients (tested).

A cache folder holds ``meta.json`` with the key below and one ``.npy`` per video (``{vid}``,
``(T, K, N, D)``) or query (``qid{qid}``, ``(L, W)``). The key names everything the states
depend on: the tower kind, the architecture (``model_name`` or a hash of ``model_cfg``), the
pretrained tag or file hash, a sha256 of the prefix weights themselves, the image size, ``k``,
the storage dtype, and the data side (frame sampling for video, tokenizer for text). A cache
whose key differs from the model's or the pipeline's is refused, naming the field.
"""
import hashlib
import json
import os.path as osp
from typing import Dict, List, Optional

from torch import nn

from mmvpeft.utils.fingerprint import _update_with_tensor, base_source

META_FILE = 'meta.json'
# Fields the model checks (the data side checks 'sampling' / 'tokenizer').
MODEL_FIELDS = ('tower', 'source', 'image_size', 'start_block', 'prefix_sha256')


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
        tower: a PETL tower (``CLIPVisionBackbone`` / ``CLIPTextBackbone``).
        source_cfg: its ``model_name`` / ``pretrained`` / ``model_cfg`` arguments.
        k: the first block run from the cache.
    """
    h = hashlib.sha256()
    params = [(f'prefix.{n}', p) for n, p in tower.named_prefix_parameters()]
    for i, block in enumerate(tower.blocks()[:k]):
        params += [(f'blocks.{i}.{n}', p) for n, p in block.named_parameters()]
    for name, p in params:
        _update_with_tensor(h, name, p)
    source = base_source(dict(source_cfg or {}))
    source.pop('pretrained_path', None)  # the file hash identifies it; paths may move
    image_size = getattr(tower, 'image_size', None)
    return dict(tower=tower.tower_kind, source=source,
                image_size=list(image_size) if image_size is not None else None,
                start_block=int(k), prefix_sha256=h.hexdigest())


def read_meta(cache_dir: str) -> Dict:
    path = osp.join(cache_dir, META_FILE)
    if not osp.isfile(path):
        raise PrefixCacheError(f'{path} not found: {cache_dir} is not a prefix cache; build it '
                               'with tools/build_prefix_cache.py CONFIG CACHE_DIR')
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def _norm(value):
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def check_meta(meta: Dict, expected: Dict, fields, where: str) -> None:
    """Raise :class:`PrefixCacheError` naming the first of ``fields`` that differs."""
    for field in fields:
        if _norm(meta.get(field)) != _norm(expected.get(field)):
            raise PrefixCacheError(
                f'stale or mismatched prefix cache {where}: {field} is '
                f'{meta.get(field)!r} in the cache but {expected.get(field)!r} for this '
                f'{"model" if field in MODEL_FIELDS else "pipeline"}. Rebuild it with '
                'tools/build_prefix_cache.py (into a new folder or with --overwrite).')
