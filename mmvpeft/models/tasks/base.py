"""What every video-language task model shares: towers or features in, auxiliary losses
(PVLA), declared loss keys, and trainable-only checkpoints."""
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.model import BaseModel

from mmvpeft.registry import MODELS
from mmvpeft.utils.fingerprint import (FINGERPRINT_KEY, base_source, check_loaded_state,
                                       frozen_fingerprint)


class VideoLanguageModel(BaseModel):
    """Base of the task models (grounding, retrieval, ...).

    A task subclass adds its head and loss and implements ``forward``; this class owns:

    - the towers: ``video_backbone`` (frames -> ``dict(feats (B, T, E), aux)``) and
      ``text_backbone`` (tokens -> ``dict(feats (B, L, W), pooled (B, E), mask, aux)``), or
      pre-extracted features when a tower is absent (:meth:`encode_video`,
      :meth:`encode_text`);
    - PVLA, between the towers' READ states (``aux['read_states']``), logged as
      ``loss_pvla`` (:meth:`pvla`);
    - the loss total: exactly :attr:`loss_keys` are summed, an undeclared ``loss*`` key is an
      error (MMEngine's default sums every key containing "loss");
    - what a checkpoint keeps: with ``save_trainable_only`` the state dict omits frozen
      parameters (adapter-only checkpoints) and records a fingerprint of the frozen base;
      loading one keeps the frozen weights the model was built with, after checking they are
      the ones it was trained on (:mod:`mmvpeft.utils.fingerprint`). Missing, unexpected or
      mismatched trainable weights are an error unless partial loading is asked for. What
      trains is decided once, when the towers apply their PEFT methods
      (:func:`mmvpeft.models.peft.apply_peft`).

    Args:
        video_backbone (dict, optional): e.g. ``CLIPVisionBackbone``.
        text_backbone (dict, optional): e.g. ``CLIPTextBackbone``.
        pvla_loss (dict, optional): ``PVLALoss`` config; None disables it.
        save_trainable_only (bool): drop frozen parameters from checkpoints.
        allow_base_mismatch (bool): load a trainable-only checkpoint even if its frozen-base
            fingerprint differs from this model's (a warning instead of an error).
        allow_partial_load (bool): load a checkpoint with missing, unexpected or
            shape-mismatched weights (a warning instead of an error; torch's
            ``strict=False`` also allows it).
        pvla_text_start (bool): keep the text start token in the PVLA alignment. Its
            state is the same for every query (causal attention: position 0 sees only
            itself, and READ's recurrence starts there), so it carries no query content
            but still takes 1/L of the text mass. ``False`` aligns words and EOT only
            (``configs/read_tacos_budget.py``); the default ``True`` keeps earlier
            configs' behaviour.
    """

    def __init__(self,
                 video_backbone: Optional[dict] = None,
                 text_backbone: Optional[dict] = None,
                 pvla_loss: Optional[dict] = None,
                 save_trainable_only: bool = True,
                 allow_base_mismatch: bool = False,
                 allow_partial_load: bool = False,
                 pvla_text_start: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.video_backbone = MODELS.build(video_backbone) if video_backbone else None
        self.text_backbone = MODELS.build(text_backbone) if text_backbone else None
        self.pvla_loss = MODELS.build(pvla_loss) if pvla_loss else None
        self.save_trainable_only = save_trainable_only
        self.allow_base_mismatch, self.allow_partial_load = allow_base_mismatch, allow_partial_load
        self.pvla_text_start = pvla_text_start
        self.base_sources = dict(video_backbone=base_source(video_backbone),
                                 text_backbone=base_source(text_backbone))
        self._register_state_dict_hook(_drop_frozen_params)
        self._register_load_state_dict_pre_hook(_fill_frozen_params, with_module=True)

    # ---- inputs -----------------------------------------------------------------------
    def encode_video(self, inputs: dict) -> dict:
        """``imgs`` through the video tower, or ``video_feat`` as given.

        Returns:
            dict: ``feats`` (B, T, E), ``mask`` (B, T), ``aux`` (the tower's method outputs).
        """
        mask = inputs.get('video_mask')
        if 'video_prefix' in inputs:  # frozen-prefix cache: states entering block k
            if self.video_backbone is None:
                raise KeyError('inputs has "video_prefix" but the model has no video_backbone')
            out = self.video_backbone(None, mask, prefix_states=inputs['video_prefix'])
            return dict(feats=out['feats'], mask=mask, aux=out.get('aux', {}))
        if 'imgs' in inputs:
            if self.video_backbone is None:
                raise KeyError('inputs has "imgs" (raw frames) but the model has no '
                               'video_backbone; add one or load clip features instead')
            out = self.video_backbone(inputs['imgs'], mask)
            return dict(feats=out['feats'], mask=mask, aux=out.get('aux', {}))
        if 'video_feat' not in inputs:
            raise KeyError(f'inputs needs "imgs" or "video_feat", got {sorted(inputs)}')
        return dict(feats=inputs['video_feat'], mask=mask, aux={})

    def encode_text(self, inputs: dict) -> dict:
        """``text_tokens`` through the text tower, or ``text_feat`` as given.

        Returns:
            dict: ``feats`` (B, L, W), ``mask`` (B, L), ``pooled`` (B, E) when a tower ran,
            ``aux``.
        """
        mask = inputs.get('text_mask')
        if 'text_prefix' in inputs:  # frozen-prefix cache
            if self.text_backbone is None:
                raise KeyError('inputs has "text_prefix" but the model has no text_backbone')
            out = self.text_backbone(None, mask, prefix_states=inputs['text_prefix'])
            return dict(feats=out['feats'], pooled=out['pooled'], mask=mask,
                        aux=out.get('aux', {}))
        if 'text_tokens' in inputs:
            if self.text_backbone is None:
                raise KeyError('inputs has "text_tokens" but the model has no text_backbone')
            out = self.text_backbone(inputs['text_tokens'], mask)
            return dict(feats=out['feats'], pooled=out['pooled'], mask=mask,
                        aux=out.get('aux', {}))
        if 'text_feat' not in inputs:
            raise KeyError(f'inputs needs "text_tokens" or "text_feat", got {sorted(inputs)}')
        return dict(feats=inputs['text_feat'], mask=mask, aux={})

    # ---- losses -----------------------------------------------------------------------
    @property
    def task_loss_keys(self) -> Tuple[str, ...]:
        """The task's own loss terms (the head's)."""
        raise NotImplementedError

    @property
    def loss_keys(self) -> Tuple[str, ...]:
        """Exactly the loss terms summed into the total; anything else is only logged."""
        return tuple(self.task_loss_keys) + (('loss_pvla', ) if self.pvla_loss is not None
                                             else ())

    def pvla(self, video_states: Optional[torch.Tensor], text_states: Optional[torch.Tensor],
             video_mask: torch.Tensor, text_mask: torch.Tensor, source: str = 'backbone'
             ) -> torch.Tensor:
        """PVLA between (B, Nv, r) video and (B, Nl, r) text states."""
        if video_states is None or text_states is None:
            raise RuntimeError(f'pvla_loss is set but the {source} has no READ states for '
                               'both modalities; add READ to both or set pvla_loss=None')
        if not self.pvla_text_start:  # the start token is the same for every query
            text_states, text_mask = text_states[:, 1:], text_mask[:, 1:]
        return self.pvla_loss(video_states, text_states, video_mask, text_mask)

    def parse_losses(self, losses: Dict[str, torch.Tensor]):
        """Sum exactly ``self.loss_keys``; an undeclared ``loss*`` key is an error rather
        than silently added (MMEngine's default sums every key containing "loss"); other
        keys (e.g. ``logit_scale``) are logged only."""
        undeclared = [k for k in losses if k.startswith('loss') and k not in self.loss_keys]
        if undeclared:
            raise KeyError(f'losses {undeclared} are not declared in loss_keys '
                           f'{self.loss_keys}; declare them so the total is explicit')
        missing = [k for k in self.loss_keys if k not in losses]
        if missing:
            raise KeyError(f'declared losses {missing} were not returned')
        total = sum(losses[k] for k in self.loss_keys)
        log_vars = OrderedDict([('loss', total.detach())])
        log_vars.update((k, v.detach() if torch.is_tensor(v) else v) for k, v in losses.items())
        residual = getattr(self.pvla_loss, 'last_residual', None)
        if 'loss_pvla' in losses and residual is not None:
            # the KKT residual of the last PVLA plan: logged, never summed
            log_vars['pvla/residual'] = residual
        return total, log_vars

    # ---- checkpoints and inference ----------------------------------------------------
    def frozen_param_names(self) -> List[str]:
        return [n for n, p in self.named_parameters() if not p.requires_grad]

    def towers(self) -> List[torch.nn.Module]:
        return [t for t in (self.video_backbone, self.text_backbone) if t is not None]

    def merge_peft(self) -> 'VideoLanguageModel':
        """Fold mergeable PEFT methods (LoRA) into the tower weights, for inference."""
        for tower in self.towers():
            tower.merge_peft()
        return self


def _drop_frozen_params(module: VideoLanguageModel, state_dict, prefix, local_metadata):
    # The fingerprint rides in the state dict's metadata; see mmvpeft/utils/fingerprint.py.
    local_metadata[FINGERPRINT_KEY] = frozen_fingerprint(module, module.base_sources)
    if module.save_trainable_only:
        for name in module.frozen_param_names():
            state_dict.pop(prefix + name, None)
    return state_dict


def _fill_frozen_params(module: VideoLanguageModel, state_dict, prefix, local_metadata, strict,
                        missing_keys, unexpected_keys, error_msgs):
    # A trainable-only checkpoint omits frozen weights: keep the ones the model was built
    # with (its pretrained backbone) instead of reporting hundreds of missing keys, provided
    # they are the ones the checkpoint was trained on. Missing trainable weights are an error.
    filled = []
    for name, param in module.named_parameters():
        if not param.requires_grad and prefix + name not in state_dict:
            state_dict[prefix + name] = param.detach()
            filled.append(name)
    check_loaded_state(module, state_dict, prefix, local_metadata, filled,
                       allow_partial=module.allow_partial_load or not strict,
                       allow_base_mismatch=module.allow_base_mismatch,
                       sources=module.base_sources)
