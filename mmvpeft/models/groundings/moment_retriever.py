"""The temporal-grounding model: optional CLIP towers, cross-modal encoder, dense head."""
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.model import BaseModel

from mmvpeft.registry import MODELS
from mmvpeft.utils.fingerprint import (FINGERPRINT_KEY, base_source, check_loaded_state,
                                       frozen_fingerprint)


@MODELS.register_module()
class MomentRetriever(BaseModel):
    """Moment retrieval from clip features or raw frames.

    ``inputs`` (from ``moment_collate``) holds ``video_feat (B, T, Dv)`` or ``imgs
    (B, T, K, 3, H, W)`` with ``video_mask (B, T)``, and ``text_feat (B, L, Dt)`` or
    ``text_tokens (B, L)`` with ``text_mask (B, L)``. Frames and tokens go through
    ``video_backbone`` / ``text_backbone`` (e.g. frozen CLIP towers with READ adapters).

    This class is the one place that decides what trains and what a checkpoint keeps:
    backbones freeze their pretrained weights when built; with ``save_trainable_only`` the
    state dict omits frozen parameters (adapter-only checkpoints), and loading such a
    checkpoint keeps the frozen weights the model was built with, after checking they are the
    ones it was trained on (see :mod:`mmvpeft.utils.fingerprint`).

    Args:
        encoder: ``CrossModalEncoder`` config.
        head: ``DenseMomentHead`` config.
        video_backbone: frames -> ``dict(feats (B, T, E), states (B, T, r) | None)``.
        text_backbone: tokens -> ``dict(feats (B, L, W), states (B, L, r) | None, ...)``.
        pvla_loss: ``PVLALoss`` config, logged as ``loss_pvla``; None disables it.
        pvla_source: ``'backbone'`` (CLIP adapter states) or ``'encoder'`` (adapter states
            of the encoder's unimodal layers).
        save_trainable_only: drop frozen parameters from checkpoints.
        allow_base_mismatch: load a trainable-only checkpoint even if its frozen-base
            fingerprint differs from this model's (a warning instead of an error).
        allow_partial_load: load a checkpoint with missing, unexpected or shape-mismatched
            weights (a warning instead of an error; torch's ``strict=False`` also allows it).
        test_cfg: ``dict(nms_thr=0.7, max_windows=10)``.
    """

    def __init__(self,
                 encoder: dict,
                 head: dict,
                 video_backbone: Optional[dict] = None,
                 text_backbone: Optional[dict] = None,
                 pvla_loss: Optional[dict] = None,
                 pvla_source: str = 'backbone',
                 save_trainable_only: bool = True,
                 allow_base_mismatch: bool = False,
                 allow_partial_load: bool = False,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if pvla_source not in ('backbone', 'encoder'):
            raise ValueError(f'pvla_source must be "backbone" or "encoder", got {pvla_source!r}')
        self.video_backbone = MODELS.build(video_backbone) if video_backbone else None
        self.text_backbone = MODELS.build(text_backbone) if text_backbone else None
        self.encoder = MODELS.build(encoder)
        self.head = MODELS.build(head)
        self.pvla_loss = MODELS.build(pvla_loss) if pvla_loss else None
        self.pvla_source = pvla_source
        self.test_cfg = {**dict(nms_thr=0.7, max_windows=10), **(test_cfg or {})}
        self.save_trainable_only = save_trainable_only
        self.allow_base_mismatch, self.allow_partial_load = allow_base_mismatch, allow_partial_load
        self.base_sources = dict(video_backbone=base_source(video_backbone),
                                 text_backbone=base_source(text_backbone))
        self._register_state_dict_hook(_drop_frozen_params)
        self._register_load_state_dict_pre_hook(_fill_frozen_params, with_module=True)

    @property
    def loss_keys(self) -> Tuple[str, ...]:
        """Exactly the loss terms summed into the total; anything else is only logged."""
        return self.head.loss_keys + (('loss_pvla',) if self.pvla_loss is not None else ())

    def extract_feat(self, inputs: dict) -> dict:
        """Encode video and text; returns the encoder's dict plus ``video_mask``/``text_mask``
        and the adapter states PVLA aligns."""
        video_mask, text_mask = inputs['video_mask'], inputs['text_mask']
        video_states = text_states = None
        if 'imgs' in inputs:
            if self.video_backbone is None:
                raise KeyError('inputs has "imgs" (raw frames) but the model has no '
                               'video_backbone; add one or load clip features instead')
            out = self.video_backbone(inputs['imgs'], video_mask)
            video, video_states = out['feats'], out.get('states')
        else:
            video = inputs['video_feat']
        if 'text_tokens' in inputs:
            if self.text_backbone is None:
                raise KeyError('inputs has "text_tokens" but the model has no text_backbone')
            out = self.text_backbone(inputs['text_tokens'], text_mask)
            text, text_states = out['feats'], out.get('states')
        else:
            text = inputs['text_feat']
        # Backbones may run in half precision; the encoder takes its own dtype.
        dtype = next(self.encoder.parameters()).dtype
        enc = self.encoder(video.to(dtype), video_mask, text.to(dtype), text_mask)
        if self.pvla_source == 'backbone':
            enc['video_states'], enc['text_states'] = video_states, text_states
        enc.update(video_mask=video_mask, text_mask=text_mask)
        return enc

    def forward(self, inputs: dict, data_samples: Optional[List[dict]] = None,
                mode: str = 'tensor'):
        """MMEngine entry: ``mode`` is ``'loss'``, ``'predict'`` or ``'tensor'``."""
        enc = self.extract_feat(inputs)
        outputs = self.head(enc['feats'], enc['video_mask'])
        if mode == 'tensor':
            return outputs
        if mode == 'loss':
            losses = self.head.loss(outputs, enc['video_mask'], data_samples)
            if self.pvla_loss is not None:
                if enc['video_states'] is None or enc['text_states'] is None:
                    raise RuntimeError(
                        f'pvla_loss is set but the {self.pvla_source} has no READ adapter '
                        'states for both modalities; add adapters or set pvla_loss=None')
                losses['loss_pvla'] = self.pvla_loss(enc['video_states'], enc['text_states'],
                                                     enc['video_mask'], enc['text_mask'])
            return losses
        if mode == 'predict':
            preds = self.head.predict(outputs, enc['video_mask'], data_samples,
                                      **self.test_cfg)
            for pred, sample in zip(preds, data_samples):
                pred.update({k: v for k, v in sample.items() if k not in pred})
            return preds
        raise ValueError(f'unknown mode {mode!r}; expected "loss", "predict" or "tensor"')

    def parse_losses(self, losses: Dict[str, torch.Tensor]):
        """Sum exactly ``self.loss_keys``; an undeclared ``loss*`` key is an error rather
        than silently added (MMEngine's default sums every key containing "loss")."""
        undeclared = [k for k in losses if k not in self.loss_keys]
        if undeclared:
            raise KeyError(f'losses {undeclared} are not declared in loss_keys '
                           f'{self.loss_keys}; declare them so the total is explicit')
        missing = [k for k in self.loss_keys if k not in losses]
        if missing:
            raise KeyError(f'declared losses {missing} were not returned')
        total = sum(losses[k] for k in self.loss_keys)
        log_vars = OrderedDict([('loss', total.detach())])
        log_vars.update((k, v.detach()) for k, v in losses.items())
        return total, log_vars

    def frozen_param_names(self) -> List[str]:
        return [n for n, p in self.named_parameters() if not p.requires_grad]


def _drop_frozen_params(module: MomentRetriever, state_dict, prefix, local_metadata):
    # The fingerprint rides in the state dict's metadata; see mmvpeft/utils/fingerprint.py.
    local_metadata[FINGERPRINT_KEY] = frozen_fingerprint(module, module.base_sources)
    if module.save_trainable_only:
        for name in module.frozen_param_names():
            state_dict.pop(prefix + name, None)
    return state_dict


def _fill_frozen_params(module: MomentRetriever, state_dict, prefix, local_metadata, strict,
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
