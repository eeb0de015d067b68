"""Text-video retrieval: pooled CLIP frame embeddings against CLIP text embeddings."""
import math
import zlib
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from mmvpeft.registry import MODELS
from .base import VideoLanguageModel


@MODELS.register_module()
class VideoTextRetriever(VideoLanguageModel):
    """Contrastive text-video retrieval (CLIP4Clip-style) over PEFT-adapted CLIP towers.

    ``inputs`` (``video_captions_collate``): ``imgs (B, T, K, 3, H, W)`` with ``video_mask
    (B, T)``, ``text_tokens (C, L)`` with ``text_mask (C, L)``, and ``text_video_index (C,)``
    (the batch row of each caption's video; in training C == B, pairs in order).

    Video: per-frame CLIP embeddings pooled over time (``temporal_pool``), L2-normalised.
    Text: the CLIP text embedding (EOT token), L2-normalised. Loss: symmetric InfoNCE with a
    learnable temperature, negatives gathered from every process (``loss``), logged as
    ``loss_contrastive``; PVLA (optional) aligns each pair's READ states.

    Args:
        video_backbone (dict): e.g. ``CLIPVisionBackbone`` with ``peft=[TokenMixing]``.
        text_backbone (dict): ``CLIPTextBackbone``.
        temporal_pool (dict): ``TemporalPool`` config (``mode='mean'`` or
            ``'transformer'``).
        loss (dict): ``SymmetricInfoNCELoss`` config.
        logit_scale_init (float): initial inverse temperature (CLIP: 1 / 0.07).
        max_logit_scale (float): clamp of the inverse temperature (CLIP: 100).
        learn_logit_scale (bool): train the temperature.
        pvla_loss: see :class:`VideoLanguageModel`.
        **kwargs: :class:`VideoLanguageModel` options (``save_trainable_only``,
            ``allow_base_mismatch``, ``allow_partial_load``, ``data_preprocessor``).
    """

    def __init__(self,
                 video_backbone: dict,
                 text_backbone: dict,
                 temporal_pool: Optional[dict] = None,
                 loss: Optional[dict] = None,
                 logit_scale_init: float = 1 / 0.07,
                 max_logit_scale: float = 100.0,
                 learn_logit_scale: bool = True,
                 pvla_loss: Optional[dict] = None,
                 **kwargs):
        super().__init__(video_backbone=video_backbone, text_backbone=text_backbone,
                         pvla_loss=pvla_loss, **kwargs)
        self.temporal_pool = MODELS.build(temporal_pool or dict(type='TemporalPool'))
        self.loss_fn = MODELS.build(loss or dict(type='SymmetricInfoNCELoss'))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(logit_scale_init)),
                                        requires_grad=learn_logit_scale)
        self.max_logit_scale = max_logit_scale

    @property
    def task_loss_keys(self) -> Tuple[str, ...]:
        return ('loss_contrastive', )

    def embed(self, inputs: dict) -> dict:
        """Normalised embeddings.

        Returns:
            dict: ``video_embed`` (B, E), ``text_embed`` (C, E), and the tower outputs
            ``video`` / ``text`` (for their ``aux``).
        """
        video, text = self.encode_video(inputs), self.encode_text(inputs)
        if 'pooled' not in text:
            raise KeyError('retrieval needs a text_backbone (pooled text embeddings); '
                           'pre-extracted per-token text features are not enough')
        pooled = self.temporal_pool(video['feats'].float(), video['mask'])
        return dict(video_embed=F.normalize(pooled, dim=-1),
                    text_embed=F.normalize(text['pooled'].float(), dim=-1),
                    video=video, text=text)

    def forward(self, inputs: dict, data_samples: Optional[List[dict]] = None,
                mode: str = 'tensor'):
        """MMEngine entry: ``mode`` is ``'loss'``, ``'predict'`` or ``'tensor'``."""
        emb = self.embed(inputs)
        index = inputs.get('text_video_index')
        if index is None:
            index = torch.arange(emb['text_embed'].shape[0], device=emb['text_embed'].device)
        if mode == 'tensor':
            return dict(video_embed=emb['video_embed'], text_embed=emb['text_embed'])
        if mode == 'loss':
            scale = self.logit_scale.exp().clamp(max=self.max_logit_scale)
            losses = dict(loss_contrastive=self.loss_fn(
                emb['video_embed'][index], emb['text_embed'], scale,
                pair_ids=pair_ids(data_samples, index.tolist(), emb['text_embed'].device)))
            if self.pvla_loss is not None:
                v_states = emb['video']['aux'].get('read_states')
                losses['loss_pvla'] = self.pvla(
                    None if v_states is None else v_states[index],
                    emb['text']['aux'].get('read_states'), inputs['video_mask'][index],
                    inputs['text_mask'])
            losses['logit_scale'] = scale.detach()  # logged, not summed
            return losses
        if mode == 'predict':
            preds = []
            for i, sample in enumerate(data_samples):
                rows = (index == i).nonzero().flatten()
                preds.append(dict(sample, video_embed=emb['video_embed'][i].detach(),
                                  text_embeds=emb['text_embed'][rows].detach()))
            return preds
        raise ValueError(f'unknown mode {mode!r}; expected "loss", "predict" or "tensor"')


def pair_ids(data_samples: Optional[Sequence[dict]], text_video_index: Sequence[int],
             device=None) -> Optional[torch.Tensor]:
    """(C,) ids, equal for training pairs that must not be each other's negatives.

    Two pairs share an id when they show the same video (two captions of one video in a
    batch) or carry the same caption text (a synthetic set repeats captions across videos).
    Ids are CRC32s of a canonical member, so they agree across processes (Python's
    ``hash`` of a string does not).
    """
    if not data_samples:
        return None
    keys = []
    for c, i in enumerate(text_video_index):
        sample = data_samples[i]
        captions = sample.get('captions') or []
        caption = captions[c - text_video_index.index(i)] if captions else None
        keys.append((str(sample.get('vid', i)), caption))
    parent = list(range(len(keys)))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a in range(len(keys)):
        for b in range(a):
            if keys[a][0] == keys[b][0] or (keys[a][1] is not None and keys[a][1] == keys[b][1]):
                parent[find(a)] = find(b)
    ids = [zlib.crc32(keys[find(a)][0].encode()) for a in range(len(keys))]
    return torch.tensor(ids, dtype=torch.long, device=device)
