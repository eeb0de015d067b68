"""Adapter-only checkpoints in safetensors: the trained parameters of a model (PETL modules,
task head, unfrozen blocks) and the config that rebuilds the frozen rest.

A file holds every parameter with ``requires_grad`` and every persistent buffer outside the
frozen towers, under their ``state_dict`` names, and, in the safetensors metadata:

* ``mmvpeft_format``: ``'adapter-v1'``;
* ``config``: the config text (MMEngine's ``Config.pretty_text``) that builds the model;
* ``trainable``: the JSON list of the trainable parameter names;
* ``frozen_fingerprint``: the JSON fingerprint of the frozen base the adapters were trained
  on (:mod:`mmvpeft.utils.fingerprint`, the one ``.pth`` checkpoints carry). Files written
  before it existed lack it and load with a warning.

Loading one onto a freshly built model (its frozen base built from the same config, e.g.
CLIP weights by tag, or random towers from the config's ``init_seed``) reproduces the
trained model exactly; the names must match both ways, so a file from another config fails
naming the first differing key, and a model on another frozen base is refused
(:class:`~mmvpeft.utils.fingerprint.FrozenBaseMismatchError` naming both fingerprints)
unless the model was built with ``allow_base_mismatch=True`` (tools:
``--allow-base-mismatch``), as for ``.pth`` checkpoints.
"""
import json
import os.path as osp
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from .fileio import write_bytes_atomic
from .fingerprint import FINGERPRINT_KEY, check_fingerprint, frozen_fingerprint

FORMAT = 'adapter-v1'


def adapter_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The tensors an adapter file keeps: trainable parameters and the persistent buffers of
    modules that hold a trainable parameter or sit outside the towers (e.g. a head's).

    Args:
        model: a built model (``VideoLanguageModel``), unwrapped.

    Returns:
        ``{state_dict name: tensor}``, contiguous CPU copies.
    """
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    frozen_prefixes = [n.rsplit('.', 1)[0] + '.' for n, p in model.named_parameters()
                       if not p.requires_grad and '.' in n]
    out = {}
    full = nn.Module.state_dict(model, keep_vars=True)  # bypasses trainable-only hooks
    for name, value in full.items():
        if name in trainable:
            out[name] = value
        elif not isinstance(value, nn.Parameter) and not any(
                name.startswith(p) for p in frozen_prefixes):
            out[name] = value
    return {k: v.detach().cpu().contiguous() for k, v in out.items()}


def _config_text(cfg) -> str:
    if cfg is None:
        return ''
    if isinstance(cfg, str):
        return cfg
    return cfg.pretty_text


def save_adapter(model: nn.Module, path: str, cfg=None,
                 fingerprint: Optional[dict] = None) -> str:
    """Write the adapter-only safetensors file of ``model`` (atomically).

    Args:
        model: the (unwrapped) model.
        path: ``.safetensors`` output path; parent folders are created.
        cfg: the MMEngine ``Config`` (or its text) that builds the model; stored in the
            metadata so :func:`build_from_adapter` can rebuild it.
        fingerprint: the model's ``frozen_fingerprint``, when the caller has it already
            (it hashes every frozen weight); computed here otherwise.

    Returns:
        ``path``.
    """
    from safetensors.torch import save
    if not path.endswith('.safetensors'):
        raise ValueError(f'adapter path must end in .safetensors, got {path!r}')
    tensors = adapter_state_dict(model)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    if fingerprint is None:
        fingerprint = frozen_fingerprint(model, getattr(model, 'base_sources', None))
    meta = {'mmvpeft_format': FORMAT, 'config': _config_text(cfg),
            'trainable': json.dumps(trainable),
            FINGERPRINT_KEY: json.dumps(fingerprint, sort_keys=True)}
    write_bytes_atomic(path, save(tensors, metadata=meta))
    return path


def read_adapter(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """``(tensors, metadata)`` of an adapter file; errors name the file."""
    from safetensors import safe_open
    if not osp.isfile(path):
        raise FileNotFoundError(f'adapter file not found: {path}')
    try:
        with safe_open(path, framework='pt', device='cpu') as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own SafetensorError
        raise ValueError(f'{path}: not a readable safetensors file ({e})') from e
    if meta.get('mmvpeft_format') != FORMAT:
        raise ValueError(f'{path}: not an mmvpeft adapter file (metadata mmvpeft_format='
                         f'{meta.get("mmvpeft_format")!r}, expected {FORMAT!r})')
    return tensors, meta


def saved_fingerprint(path: str, meta: Dict[str, str]) -> Optional[dict]:
    """The frozen-base fingerprint stored in an adapter file's metadata, or None for a file
    written before adapter files carried one."""
    text = meta.get(FINGERPRINT_KEY)
    if text is None:
        return None
    try:
        fingerprint = json.loads(text)
    except ValueError as e:
        raise ValueError(f'{path}: metadata {FINGERPRINT_KEY!r} is not valid JSON ({e})'
                         ) from e
    if not isinstance(fingerprint, dict) or not isinstance(fingerprint.get('parts'), dict):
        raise ValueError(f'{path}: metadata {FINGERPRINT_KEY!r} is not a frozen-base '
                         f'fingerprint (no "parts" mapping)')
    return fingerprint


def load_adapter(model: nn.Module, path: str,
                 allow_base_mismatch: Optional[bool] = None) -> nn.Module:
    """Load an adapter file onto a freshly built model, strictly.

    Every tensor the model's :func:`adapter_state_dict` names must be in the file and vice
    versa, with equal shapes; the frozen weights stay as built, and must be the ones the
    file was trained on: the file's frozen-base fingerprint is compared with the model's
    (every part holding frozen parameters, as the file has none of them).

    Args:
        model: the freshly built model.
        path: the ``.safetensors`` adapter file.
        allow_base_mismatch: load onto another frozen base with a warning instead of an
            error; None takes the model's ``allow_base_mismatch`` (the config's
            ``model.allow_base_mismatch``, set by ``--allow-base-mismatch``).

    Raises:
        KeyError / ValueError: naming the file and the first missing, unexpected or
            mis-shaped key.
        FrozenBaseMismatchError: the model's frozen base is not the file's, naming the file
            and both fingerprints.
    """
    tensors, meta = read_adapter(path)
    expected = adapter_state_dict(model)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise KeyError(f'{path} does not match the model: {len(missing)} missing key(s) '
                       f'(first: {missing[:1]}), {len(unexpected)} unexpected (first: '
                       f'{unexpected[:1]}); was it saved from another config?')
    for name, value in tensors.items():
        if value.shape != expected[name].shape:
            raise ValueError(f'{path}: {name} has shape {tuple(value.shape)}, the model '
                             f'{tuple(expected[name].shape)}')
    if allow_base_mismatch is None:
        allow_base_mismatch = bool(getattr(model, 'allow_base_mismatch', False))
    check_fingerprint(saved_fingerprint(path, meta),
                      frozen_fingerprint(model, getattr(model, 'base_sources', None)),
                      allow_mismatch=allow_base_mismatch, source=f'adapter file {path}')
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    with torch.no_grad():
        for name, value in tensors.items():
            target = params.get(name, buffers.get(name))
            target.copy_(value.to(target.device, target.dtype))
    return model


def build_from_adapter(path: str, cfg_options: Optional[dict] = None, device: str = 'cpu'):
    """Build the model from the config stored in an adapter file and load the file.

    Args:
        path: ``.safetensors`` adapter file.
        cfg_options: overrides of the stored config (e.g. a local CLIP weight file).
        device: where the model goes.

    Returns:
        ``(model, cfg)``: the model in eval mode, and the MMEngine ``Config``.
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmvpeft.registry import MODELS
    _, meta = read_adapter(path)
    if not meta.get('config'):
        raise ValueError(f'{path} holds no config; build the model from its config file and '
                         'call load_adapter(model, path)')
    cfg = Config.fromstring(meta['config'], file_format='.py')
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmvpeft'))
    model = MODELS.build(cfg.model)
    load_adapter(model, path)
    return model.to(device).eval(), cfg
