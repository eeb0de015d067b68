"""Small open_clip factory: built-in or custom configs, hub tags or local files."""
import copy
import difflib
import os.path as osp
from typing import Optional, Tuple

import open_clip
import torch
from open_clip.model import CLIP

from mmvpeft.utils.fingerprint import DEFAULT_INIT_SEED


def _unknown_model_error(model_name: str) -> ValueError:
    names = open_clip.list_models()
    close = difflib.get_close_matches(model_name, names, n=5)
    hint = f' Close matches: {close}.' if close else ''
    return ValueError(
        f"Unknown open_clip model name '{model_name}'.{hint} See open_clip.list_models() "
        f'for the {len(names)} built-in names, or pass model_cfg=dict(embed_dim=..., '
        'vision_cfg=..., text_cfg=...) for a custom architecture.')


def _missing_checkpoint_error(pretrained: str, model_name: Optional[str]) -> FileNotFoundError:
    tags = open_clip.list_pretrained_tags_by_model(model_name) if model_name else []
    tag_hint = f" (known hub tags for '{model_name}': {tags})" if tags else ''
    return FileNotFoundError(
        f"pretrained='{pretrained}' is neither an existing checkpoint file nor a "
        f'known open_clip tag{tag_hint}; no file at {osp.abspath(pretrained)}')


def create_open_clip(model_name: str = 'ViT-B-32',
                     pretrained: Optional[str] = None,
                     model_cfg: Optional[dict] = None,
                     init_seed: Optional[int] = DEFAULT_INIT_SEED) -> CLIP:
    """Builds an open_clip ``CLIP`` model on CPU in fp32.

    The random initialisation (all there is when ``pretrained`` is None) is drawn from a
    private CPU generator seeded with ``init_seed``, never from the global RNG: every
    process and tool that builds the same config gets the same weights, whatever was drawn
    before, and the global RNG (which then initialises the trainable methods) is left as it
    was.

    Args:
        model_name (str): Built-in open_clip architecture name
            (``open_clip.list_models()``). Ignored when ``model_cfg`` is given.
            OpenAI weights were trained with QuickGELU: pair them with a
            ``*-quickgelu`` name when loading them from a local file (a hub tag
            sets QuickGELU itself).
        pretrained (str, optional): An open_clip tag (e.g. ``'openai'``, which
            is downloaded from the model hub) or a local checkpoint path (a
            state dict, or OpenAI's TorchScript ``.pt``). ``None`` keeps the
            random initialisation.
        model_cfg (dict, optional): An open_clip model config (``embed_dim``,
            ``vision_cfg``, ``text_cfg`` and optional ``quick_gelu`` ...) for a
            custom or tiny model; ``pretrained`` must then be a file path.
        init_seed (int, optional): seed of the random initialisation. None draws it from
            the global RNG (the behaviour before seeds existed; a random-weight tower is
            then a different one in every process).

    Returns:
        open_clip.model.CLIP: the model, in eval mode.

    Raises:
        ValueError: unknown ``model_name`` or an unsupported ``model_cfg``, or a
            non-integer ``init_seed``.
        FileNotFoundError: ``pretrained`` is not a tag and no such file exists.
        RuntimeError: a hub tag could not be fetched (e.g. no network).
    """
    if init_seed is None:
        return _create_open_clip(model_name, pretrained, model_cfg)
    if isinstance(init_seed, bool) or not isinstance(init_seed, int) or init_seed < 0:
        raise ValueError(f'init_seed must be an integer >= 0 (or None for the global RNG), '
                         f'got {init_seed!r}')
    # fork_rng restores the CPU generator afterwards; devices=[] leaves CUDA generators
    # alone (building happens on CPU, and default_generator.manual_seed touches only CPU).
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(init_seed)
        return _create_open_clip(model_name, pretrained, model_cfg)


def _create_open_clip(model_name: str, pretrained: Optional[str],
                      model_cfg: Optional[dict]) -> CLIP:
    if model_cfg is not None:
        cfg = copy.deepcopy(dict(model_cfg))
        if cfg.pop('custom_text', False) or 'multimodal_cfg' in cfg:
            raise ValueError('model_cfg must describe a plain open_clip CLIP '
                             '(custom_text / CoCa models are not supported)')
        model = CLIP(**cfg)
        if pretrained is not None:
            if not osp.isfile(pretrained):
                raise _missing_checkpoint_error(pretrained, None)
            open_clip.load_checkpoint(model, pretrained, strict=True)
        return model.eval()

    if open_clip.get_model_config(model_name) is None:
        raise _unknown_model_error(model_name)
    kwargs = {}
    if pretrained is not None:
        tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
        if tag_cfg:
            kwargs['force_quick_gelu'] = bool(tag_cfg.get('quick_gelu', False))
            try:
                model = open_clip.create_model(model_name, pretrained=pretrained, **kwargs)
            except Exception as e:  # open_clip wraps every download failure
                raise RuntimeError(
                    f"Could not fetch pretrained='{pretrained}' for '{model_name}' from "
                    'the model hub (it needs network access or a populated hub '
                    'cache; offline machines have neither). Download the checkpoint '
                    'elsewhere and pass its local file path as pretrained=... '
                    f'instead. Cause: {e}') from e
        elif osp.isfile(pretrained):
            model = open_clip.create_model(model_name, pretrained=pretrained)
        else:
            raise _missing_checkpoint_error(pretrained, model_name)
    else:
        model = open_clip.create_model(model_name, pretrained=None)
    if not isinstance(model, CLIP):
        raise ValueError(f"'{model_name}' builds {type(model).__name__}; only plain "
                         'open_clip CLIP models (open_clip text tower) are supported')
    return model.eval()


def clip_mean_std(model: torch.nn.Module) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """Image normalisation (mean, std) of an open_clip model.

    Uses the preprocessing config open_clip attached to the model (tags may
    set their own); falls back to the OpenAI CLIP statistics.

    Args:
        model: an open_clip model (``.visual`` is read if present).

    Returns:
        tuple: ``(mean, std)``, three floats each, for RGB in [0, 1].
    """
    cfg = open_clip.get_model_preprocess_cfg(model) if hasattr(
        getattr(model, 'visual', model), 'image_size') else {}
    mean = tuple(cfg.get('mean') or open_clip.OPENAI_DATASET_MEAN)
    std = tuple(cfg.get('std') or open_clip.OPENAI_DATASET_STD)
    return mean, std
