"""Temporal grounding: cross-modal encoder and dense head over the shared task base.

``MomentGrounder`` finds the moments of a video a query describes (moment retrieval,
highlight detection, summarization); :class:`VideoTextRetriever` ranks whole videos against
captions. ``MomentRetriever``, the grounding model's earlier name, stays registered as a
deprecated alias so old configs and checkpoints keep loading.
"""
import warnings
from typing import List, Optional, Tuple

from mmvpeft.registry import MODELS
from .base import VideoLanguageModel
from .input_checks import check_feature_widths
from .sliding_window import check_long_video_cfg, sliding_window_predict


@MODELS.register_module()
class MomentGrounder(VideoLanguageModel):
    """Temporal grounding (moment retrieval, highlight detection) from clip features or raw
    frames.

    ``inputs`` (``video_query_collate``) holds ``video_feat (B, T, Dv)`` or ``imgs
    (B, T, K, 3, H, W)`` with ``video_mask (B, T)``, and ``text_feat (B, L, Dt)`` or
    ``text_tokens (B, L)`` with ``text_mask (B, L)``. Towers, PVLA, loss keys and checkpoints
    are :class:`VideoLanguageModel`'s; this class adds the encoder, the head and NMS.

    Args:
        encoder: ``CrossModalEncoder`` config.
        head: ``DenseMomentHead`` config.
        video_backbone, text_backbone, pvla_loss: see :class:`VideoLanguageModel`.
        pvla_source: ``'backbone'`` (the towers' READ states) or ``'encoder'`` (adapter
            states of the encoder's unimodal layers).
        test_cfg: ``dict(nms_thr=0.7, max_windows=10)``, optionally with
            ``long_video=dict(mode='sliding', window=W, stride=S)``: a video of more than
            ``W`` clips is predicted in overlapping windows of ``W`` clips, stitched (see
            :mod:`.sliding_window`; the config's top-level ``long_video`` sets it).
        **kwargs: :class:`VideoLanguageModel` options (``save_trainable_only``,
            ``allow_base_mismatch``, ``allow_partial_load``, ``data_preprocessor``).
    """

    def __init__(self,
                 encoder: dict,
                 head: dict,
                 video_backbone: Optional[dict] = None,
                 text_backbone: Optional[dict] = None,
                 pvla_loss: Optional[dict] = None,
                 pvla_source: str = 'backbone',
                 test_cfg: Optional[dict] = None,
                 **kwargs):
        if pvla_source not in ('backbone', 'encoder'):
            raise ValueError(f'pvla_source must be "backbone" or "encoder", got {pvla_source!r}')
        super().__init__(video_backbone=video_backbone, text_backbone=text_backbone,
                         pvla_loss=pvla_loss, **kwargs)
        self.encoder = MODELS.build(encoder)
        self.head = MODELS.build(head)
        self.pvla_source = pvla_source
        self.test_cfg = {**dict(nms_thr=0.7, max_windows=10), **(test_cfg or {})}
        self.long_video = check_long_video_cfg(self.test_cfg.pop('long_video', None),
                                               'model.test_cfg.long_video')

    @property
    def task_loss_keys(self) -> Tuple[str, ...]:
        return self.head.loss_keys

    def extract_feat(self, inputs: dict) -> dict:
        """Encode video and text; returns the encoder's dict plus ``video_mask``/``text_mask``
        and the READ states PVLA aligns (``video_states`` / ``text_states``)."""
        video, text = self.encode_video(inputs), self.encode_text(inputs)
        video_mask, text_mask = inputs['video_mask'], inputs['text_mask']
        # Towers may run in half precision; the encoder takes its own dtype.
        dtype = next(self.encoder.parameters()).dtype
        enc = self.encoder(video['feats'].to(dtype), video_mask, text['feats'].to(dtype),
                           text_mask)
        if self.pvla_source == 'backbone':
            enc['video_states'] = video['aux'].get('read_states')
            enc['text_states'] = text['aux'].get('read_states')
        enc.update(video_mask=video_mask, text_mask=text_mask)
        return enc

    def forward(self, inputs: dict, data_samples: Optional[List[dict]] = None,
                mode: str = 'tensor'):
        """MMEngine entry: ``mode`` is ``'loss'``, ``'predict'`` or ``'tensor'``."""
        check_feature_widths(self.encoder, inputs, data_samples)
        lv = self.long_video
        if (mode == 'predict' and lv is not None and lv['mode'] == 'sliding'
                and inputs['video_mask'].shape[1] > lv['window']):
            preds = sliding_window_predict(self, inputs, data_samples, lv, **self.test_cfg)
            for pred, sample in zip(preds, data_samples):
                pred.update({k: v for k, v in sample.items() if k not in pred})
            return preds
        enc = self.extract_feat(inputs)
        outputs = self.head(enc['feats'], enc['video_mask'])
        if mode == 'tensor':
            return outputs
        if mode == 'loss':
            losses = self.head.loss(outputs, enc['video_mask'], data_samples)
            if self.pvla_loss is not None:
                losses['loss_pvla'] = self.pvla(enc['video_states'], enc['text_states'],
                                                enc['video_mask'], enc['text_mask'],
                                                source=self.pvla_source)
            return losses
        if mode == 'predict':
            preds = self.head.predict(outputs, enc['video_mask'], data_samples,
                                      **self.test_cfg)
            for pred, sample in zip(preds, data_samples):
                pred.update({k: v for k, v in sample.items() if k not in pred})
            return preds
        raise ValueError(f'unknown mode {mode!r}; expected "loss", "predict" or "tensor"')


@MODELS.register_module()
class MomentRetriever(MomentGrounder):
    """Deprecated name of :class:`MomentGrounder` (same arguments, same weights)."""

    def __init__(self, *args, **kwargs):
        warnings.warn('MomentRetriever is deprecated: use type=\'MomentGrounder\' (the '
                      'grounding model; VideoTextRetriever is the retrieval model)',
                      DeprecationWarning, stacklevel=2)
        super().__init__(*args, **kwargs)
