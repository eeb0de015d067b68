"""CLIP image tower applied to video frames, with optional READ adapters."""
from typing import Dict, Optional, Sequence

import torch
from torch import nn
from mmengine.model import BaseModule
from open_clip.transformer import VisionTransformer

from mmvpeft.models.adapters.inject import ReadSequenceContext, read_context
from mmvpeft.registry import MODELS
from .read_tower import ReadTowerMixin
from .open_clip_utils import clip_mean_std, create_open_clip


@MODELS.register_module()
class CLIPVisionBackbone(ReadTowerMixin, BaseModule):
    """Per-clip CLIP image embeddings of a video, READ-adapted over time.

    Every frame goes through the CLIP image tower; READ adapters in the chosen
    layers run a recurrence over the frames of each video (per token position,
    or on the CLS token only). Only ``model.visual`` is kept (the text tower is
    dropped), under its CLIP name ``visual``, so the backbone's state dict keys
    are the CLIP checkpoint's ``visual.*`` keys plus the adapters'.

    Args:
        model_name (str): open_clip architecture name. Defaults to 'ViT-B-32'.
        pretrained (str, optional): open_clip tag or local checkpoint path; see
            :func:`create_open_clip`.
        model_cfg (dict, optional): open_clip config dict for a custom model.
        frozen (bool): Freeze every CLIP parameter and keep the CLIP modules in
            eval mode even when the backbone is in train mode; the adapters
            stay trainable and follow the train/eval mode. Defaults to True.
        adapter (dict, optional): :class:`ReadAdapter` kwargs without
            ``in_dim`` (e.g. ``dict(hidden_dim=32, rnn_type='rnn')``). ``None``
            disables READ.
        adapter_layers (Sequence[int]): Blocks to adapt; negative indices
            count from the end. Defaults to (-1, ).
        adapter_mode (str): ``'tokens'``: one recurrence over frames per token
            position; ``'cls'``: only the CLS token is adapted.
        normalize (bool): Normalise input with the CLIP mean/std. uint8 input
            is scaled from [0, 255], float input is taken as [0, 1].
        init_cfg (dict, optional): MMEngine init config.
    """

    def __init__(self,
                 model_name: str = 'ViT-B-32',
                 pretrained: Optional[str] = None,
                 model_cfg: Optional[dict] = None,
                 frozen: bool = True,
                 adapter: Optional[dict] = None,
                 adapter_layers: Sequence[int] = (-1, ),
                 adapter_mode: str = 'tokens',
                 normalize: bool = True,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if adapter_mode not in ('tokens', 'cls'):
            raise ValueError(f"adapter_mode must be 'tokens' or 'cls', got {adapter_mode!r}")
        clip = create_open_clip(model_name, pretrained=pretrained, model_cfg=model_cfg)
        mean, std = clip_mean_std(clip)
        visual = clip.visual
        del clip  # drops the text tower
        if not isinstance(visual, VisionTransformer):
            raise ValueError(f'{type(visual).__name__} image towers are not supported; '
                             'CLIPVisionBackbone needs an open_clip VisionTransformer')
        if not visual.transformer.batch_first:
            raise ValueError('CLIPVisionBackbone needs a batch_first open_clip transformer')
        self.visual = visual
        self.normalize = normalize
        self.adapter_mode = adapter_mode
        self.embed_dim = visual.output_dim
        self.width = visual.transformer.width
        self.register_buffer('mean', torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(std).view(1, 3, 1, 1), persistent=False)

        self.setup_read(frozen, adapter, adapter_layers, self.width)

    def resblocks(self) -> nn.ModuleList:
        return self.visual.transformer.resblocks

    def _preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        dtype = self.visual.conv1.weight.dtype
        if frames.dtype == torch.uint8:
            frames = frames.to(dtype) / 255.
        else:
            frames = frames.to(dtype)
        if self.normalize:
            frames = (frames - self.mean.to(dtype)) / self.std.to(dtype)
        return frames

    def forward(self,
                imgs: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> Dict[str, Optional[torch.Tensor]]:
        """Embeds every clip of a batch of videos.

        Args:
            imgs (Tensor): (B, T, K, 3, H, W) with K frames per clip, or
                (B, T, 3, H, W) with one frame per clip; uint8 in [0, 255] or
                float in [0, 1]. Frames are in time order (clip-major).
            mask (Tensor, optional): (B, T) bool, True at valid clips,
                right-padded; padded clips never influence valid ones through
                the adapters.

        Returns:
            dict:
                - feats (Tensor): (B, T, E) projected CLIP image embedding per
                  clip (mean over its K frames), not L2-normalised.
                - states (Tensor | None): (B, T, r) CLS-position recurrent
                  states of the last adapted layer (mean over K), with graph,
                  zeros at padded clips; None without adapters.
        """
        if imgs.dim() == 5:
            imgs = imgs.unsqueeze(2)
        if imgs.dim() != 6 or imgs.shape[3] != 3:
            raise ValueError('imgs must be (B, T, K, 3, H, W) or (B, T, 3, H, W), '
                             f'got {tuple(imgs.shape)}')
        b, t, k, c, h, w = imgs.shape
        if (h, w) != tuple(self.visual.image_size):
            raise ValueError(f'frames are {h}x{w}, the CLIP tower expects '
                             f'{self.visual.image_size[0]}x{self.visual.image_size[1]}')
        frame_mask = None
        if mask is not None:
            if mask.shape != (b, t):
                raise ValueError(f'mask must be (B, T) = {(b, t)}, got {tuple(mask.shape)}')
            frame_mask = mask.bool().repeat_interleave(k, dim=1)

        frames = self._preprocess(imgs.reshape(b * t * k, c, h, w))
        ctx = ReadSequenceContext(
            num_frames=t * k, mask=frame_mask, cls_only=self.adapter_mode == 'cls')
        with read_context(self.resblocks(), ctx):
            pooled = self.visual(frames)
        if isinstance(pooled, tuple):  # output_tokens=True towers
            pooled = pooled[0]
        feats = pooled.reshape(b, t, k, -1).mean(dim=2)
        states = None
        if ctx.states:
            states = ctx.states[-1].reshape(b, t, k, -1).mean(dim=2)
        return dict(feats=feats, states=states)
