"""Fingerprints of the frozen base a trainable-only checkpoint was trained on.

A trainable-only checkpoint (a task model with ``save_trainable_only=True``) holds adapters and
task heads but none of the frozen weights: loading it fills them from the model as built. If
that model was built on another base (another CLIP tag, another file, another seed), the
adapters silently run on weights they were never trained with. So the checkpoint records a
fingerprint of its frozen base, and loading onto a different base is an error unless the user
asks for it.

The fingerprint is stored in the state dict's metadata (``state_dict._metadata[prefix]``, the
per-module dict that also holds ``version``), not under a reserved state-dict key: MMEngine's
``weights_to_cpu`` and most tools expect every state-dict value to be a tensor, while the
metadata travels with the state dict through ``torch.save``/``torch.load(weights_only=True)``
and MMEngine's key revision, and moves with the module's prefix when it is nested.

Layout (all plain Python types, so ``weights_only`` loads it)::

    {'version': 1,
     'parts': {'video_backbone': {'num_tensors': 150, 'num_elements': 87849216,
                                  'dtypes': ['float32'], 'weights_sha256': '...',
                                  'type': 'CLIPVisionBackbone', 'model_name': 'ViT-B-32',
                                  'pretrained_tag': 'openai'},
               'text_backbone': {...}}}

A part is a top-level child of the model holding frozen parameters. ``weights_sha256`` (over
the names, shapes, dtypes and raw bytes of its frozen tensors, ~0.35 s for ViT-B/32 on one
CPU core) decides whether two bases are the same; the other fields only say *how* they differ.
"""
import hashlib
import json
import os
import os.path as osp
import warnings
from functools import lru_cache
from typing import Dict, Iterable, List, Optional

import torch
from torch import nn

FINGERPRINT_KEY = 'frozen_fingerprint'
FINGERPRINT_VERSION = 1
# Seed of a random-weight CLIP tower (no pretrained weights) when its config sets none:
# every build of such a tower, in every process and tool, draws the same weights.
DEFAULT_INIT_SEED = 0
# Backbone types whose random initialisation comes from ``init_seed``.
_SEEDED_TYPES = ('CLIPVisionBackbone', 'CLIPTextBackbone')
# Fields compared to describe a difference; ``weights_sha256`` alone decides it.
_DESCRIPTIVE = ('type', 'model_name', 'model_cfg_sha256', 'pretrained_tag', 'pretrained_sha256',
                'init_seed', 'num_tensors', 'num_elements', 'dtypes')

__all__ = ['DEFAULT_INIT_SEED', 'FINGERPRINT_KEY', 'FrozenBaseMismatchError', 'base_source',
           'frozen_fingerprint', 'check_fingerprint', 'check_loaded_state']


class FrozenBaseMismatchError(RuntimeError):
    """A trainable-only checkpoint is being loaded onto a different frozen base."""


@lru_cache(maxsize=16)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    # size and mtime are part of the cache key so that a rewritten file is hashed again.
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 24), b''):
            h.update(chunk)
    return h.hexdigest()


def base_source(cfg: Optional[dict]) -> Dict[str, str]:
    """What a backbone config says about its frozen weights.

    Args:
        cfg: a backbone config (``type``, ``model_name``, ``pretrained``, ``model_cfg``) or
            None.

    Returns:
        dict: ``type``; ``model_name`` or ``model_cfg_sha256`` (a custom architecture);
        ``pretrained_tag`` for a hub tag, or ``pretrained_path`` and ``pretrained_sha256``
        for a local file; ``init_seed`` for a random-weight CLIP tower (no ``pretrained``).
        Empty for None.
    """
    if not cfg:
        return {}
    out = {}
    typ = cfg.get('type')
    if typ is not None:
        out['type'] = typ if isinstance(typ, str) else getattr(typ, '__name__', str(typ))
    if cfg.get('model_cfg') is not None:
        text = json.dumps(cfg['model_cfg'], sort_keys=True, default=str)
        out['model_cfg_sha256'] = hashlib.sha256(text.encode()).hexdigest()
    elif cfg.get('model_name') is not None:
        out['model_name'] = str(cfg['model_name'])
    pretrained = cfg.get('pretrained')
    if pretrained is not None:
        pretrained = str(pretrained)
        if osp.isfile(pretrained):
            stat = os.stat(pretrained)
            out['pretrained_path'] = osp.abspath(pretrained)
            out['pretrained_sha256'] = _file_sha256(osp.abspath(pretrained), stat.st_size,
                                                    stat.st_mtime_ns)
        else:
            out['pretrained_tag'] = pretrained
    elif str(out.get('type', '')).rsplit('.', 1)[-1] in _SEEDED_TYPES or 'init_seed' in cfg:
        seed = cfg.get('init_seed', DEFAULT_INIT_SEED)
        out['init_seed'] = seed if seed is None else int(seed)
    return out


def _update_with_tensor(h, name: str, tensor: torch.Tensor) -> None:
    t = tensor.detach()
    h.update(f'{name}|{tuple(t.shape)}|{t.dtype}|'.encode())
    t = t.to('cpu').contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: hash the same bits as int16
        t = t.view(torch.int16)
    h.update(memoryview(t.numpy()).cast('B'))


def frozen_fingerprint(model: nn.Module,
                       sources: Optional[Dict[str, dict]] = None) -> dict:
    """Fingerprint of the frozen (``requires_grad=False``) parameters of ``model``.

    Args:
        model: the model; parameters are grouped by top-level child ("part").
        sources: optional ``{part: base_source(...)}`` descriptions merged into the parts.

    Returns:
        dict: ``{'version': 1, 'parts': {part: {...}}}``, see the module docstring.
    """
    groups: Dict[str, List] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            groups.setdefault(name.split('.', 1)[0], []).append((name, param))
    parts = {}
    for part, params in groups.items():
        h = hashlib.sha256()
        for name, param in sorted(params, key=lambda item: item[0]):
            _update_with_tensor(h, name, param)
        parts[part] = dict(
            num_tensors=len(params), num_elements=int(sum(p.numel() for _, p in params)),
            dtypes=sorted({str(p.dtype).replace('torch.', '') for _, p in params}),
            weights_sha256=h.hexdigest(), **(sources or {}).get(part, {}))
    return dict(version=FINGERPRINT_VERSION, parts=parts)


def _describe(part: str, saved: dict, current: dict) -> str:
    diffs = [f'{k} {saved.get(k)!r} (checkpoint) vs {current.get(k)!r} (model)'
             for k in _DESCRIPTIVE if saved.get(k) != current.get(k)]
    if not diffs:  # same description, different values: e.g. another seed
        diffs = ['same architecture and source, but different weight values']
    return (f'{part}: frozen weights differ (sha256 {saved.get("weights_sha256", "?")[:12]} '
            f'vs {current.get("weights_sha256", "?")[:12]}); ' + '; '.join(diffs))


def check_fingerprint(saved: Optional[dict],
                      current: dict,
                      parts: Optional[Iterable[str]] = None,
                      allow_mismatch: bool = False,
                      source: str = 'the checkpoint') -> List[str]:
    """Compare a checkpoint's frozen-base fingerprint with the model's.

    Args:
        saved: the checkpoint's fingerprint, or None when it has none.
        current: ``frozen_fingerprint`` of the model being loaded into.
        parts: the parts to compare (those whose frozen weights the checkpoint lacks);
            None compares every part of ``current``.
        allow_mismatch: warn instead of raising.
        source: what the fingerprint came from, for the messages (e.g. an adapter file).

    Returns:
        list[str]: one line per differing part (empty when they match).

    Raises:
        FrozenBaseMismatchError: on any difference, unless ``allow_mismatch``.
    """
    cur_parts = current.get('parts', {})
    parts = sorted(cur_parts if parts is None else parts)
    if not parts:
        return []
    if saved is None:
        # Saved before fingerprints existed (or outside a task model's state_dict): nothing
        # to compare, and refusing would break every older adapter-only checkpoint.
        warnings.warn(f'{source} records no frozen-base fingerprint, so it cannot be '
                      f'checked that {parts} are the weights it was trained on (saved by an '
                      'older mmvpeft or outside a task model\'s state_dict)', RuntimeWarning,
                      stacklevel=2)
        return []
    else:
        saved_parts = saved.get('parts', {})
        problems = []
        for part in parts:
            if part not in saved_parts:
                problems.append(f'{part}: the checkpoint records no frozen weights for it')
            elif saved_parts[part].get('weights_sha256') != cur_parts.get(part, {}).get(
                    'weights_sha256'):
                problems.append(_describe(part, saved_parts[part], cur_parts.get(part, {})))
    if problems:
        what = ('trainable-only checkpoint' if source == 'the checkpoint' else source)
        msg = (f'{what} and model have different frozen bases:\n  ' +
               '\n  '.join(problems) +
               '\nThe adapters would run on weights they were not trained with. Build the '
               'model on the base the checkpoint was trained on, or pass '
               'allow_base_mismatch=True (tools: --allow-base-mismatch) to load it anyway.')
        if not allow_mismatch:
            raise FrozenBaseMismatchError(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return problems


def _model_keys(module: nn.Module, prefix: str) -> Dict[str, torch.Size]:
    """State-dict keys (parameters and persistent buffers) with their shapes."""
    keys = {prefix + n: p.shape for n, p in module.named_parameters()}
    for mod_name, mod in module.named_modules():
        for buf_name, buf in mod._buffers.items():
            if buf is not None and buf_name not in mod._non_persistent_buffers_set:
                key = f'{mod_name}.{buf_name}' if mod_name else buf_name
                keys[prefix + key] = buf.shape
    return keys


def check_loaded_state(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict,
                       filled: Iterable[str], allow_partial: bool = False,
                       allow_base_mismatch: bool = False,
                       sources: Optional[Dict[str, dict]] = None) -> None:
    """Checks run by a load pre-hook, after frozen weights were filled from the model.

    1. Missing, unexpected or shape-mismatched weights are an error unless ``allow_partial``
       (MMEngine's loader only warns about them, and would silently keep initial weights).
       When allowed, mismatched shapes are dropped from ``state_dict`` and a warning names
       what was not loaded.
    2. If any frozen weight was filled from the model (``filled``), the checkpoint's
       fingerprint must match the model's for those parts, see ``check_fingerprint``.

    Args:
        module: the module being loaded into.
        state_dict: the state dict (modified in place when partial loading drops keys).
        prefix: the module's key prefix.
        local_metadata: the module's state-dict metadata (holds the fingerprint).
        filled: names (without prefix) of frozen parameters filled from the model.
        allow_partial: accept missing / unexpected / mismatched weights.
        allow_base_mismatch: accept a different frozen base.
        sources: ``{part: base_source(...)}`` for the error message.
    """
    expected = _model_keys(module, prefix)
    given = [k for k in state_dict if k.startswith(prefix)]
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(k for k in given if k not in expected)
    mismatched = sorted(k for k in given if k in expected and hasattr(state_dict[k], 'shape')
                        and tuple(state_dict[k].shape) != tuple(expected[k]))
    if missing or unexpected or mismatched:
        lines = []
        if missing:
            lines.append(f'missing ({len(missing)}): {missing[:10]}')
        if unexpected:
            lines.append(f'unexpected ({len(unexpected)}): {unexpected[:10]}')
        if mismatched:
            lines.append(f'shape mismatch ({len(mismatched)}): ' + ', '.join(
                f'{k} {tuple(state_dict[k].shape)} (checkpoint) vs {tuple(expected[k])} (model)'
                for k in mismatched[:10]))
        msg = 'checkpoint does not match the model:\n  ' + '\n  '.join(lines)
        if not allow_partial:
            raise RuntimeError(msg + '\nPass allow_partial_load=True (tools: '
                               '--allow-partial-load) to load only what matches.')
        for k in mismatched:  # torch would raise on them even with strict=False
            state_dict.pop(k)
        warnings.warn(msg + '\nPartial load: these keep their initial values.', RuntimeWarning,
                      stacklevel=3)
    filled = list(filled)
    if filled:
        check_fingerprint(local_metadata.get(FINGERPRINT_KEY),
                          frozen_fingerprint(module, sources),
                          parts={n.split('.', 1)[0] for n in filled},
                          allow_mismatch=allow_base_mismatch)
