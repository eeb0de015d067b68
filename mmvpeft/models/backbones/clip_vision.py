"""CLIP image tower applied to video frames, with PETL methods (READ, token mixing, ...)."""
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn
from mmengine.model import BaseModule
from open_clip.transformer import VisionTransformer

from mmvpeft.models.peft.layout import SequenceLayout
from mmvpeft.registry import MODELS
from .open_clip_utils import clip_mean_std, create_open_clip
from .tower import PEFTTowerMixin


@MODELS.register_module()
class CLIPVisionBackbone(PEFTTowerMixin, BaseModule):
    """Per-clip CLIP image embeddings of a video, with PETL methods in its blocks.

    Every frame goes through the CLIP image tower; the PETL methods listed in ``peft``
    attach to its blocks and see the video layout (frames per video, frame mask) of each
    forward, so READ can recur over frames and token mixing can mix them. Only
    ``model.visual`` is kept (the text tower is dropped), under its CLIP name ``visual``,
    so the backbone's state dict keys are the CLIP checkpoint's ``visual.*`` keys plus the
    methods' modules.

    Args:
        model_name (str): open_clip architecture name. Defaults to 'ViT-B-32'.
        pretrained (str, optional): open_clip tag or local checkpoint path; see
            :func:`create_open_clip`.
        model_cfg (dict, optional): open_clip config dict for a custom model.
        frozen (bool): Freeze every CLIP parameter and keep the CLIP modules in
            eval mode even when the backbone is in train mode; what the PETL
            methods train stays trainable and follows the train/eval mode.
            Defaults to True.
        peft (list[dict], optional): PETL method configs, applied in order, e.g.
            ``[dict(type='TokenMixing', layers=(-1, )), dict(type='READ',
            layers=(-4, -3, -2, -1), hidden_dim=32)]``.
        adapter, adapter_layers, adapter_mode: the older READ-only spelling,
            kept for existing configs: ``adapter=dict(hidden_dim=32)`` equals
            ``peft=[dict(type='READ', layers=adapter_layers, mode=adapter_mode,
            hidden_dim=32)]``.
        normalize (bool): Normalise input with the CLIP mean/std. uint8 input
            is scaled from [0, 255], float input is taken as [0, 1].
        init_cfg (dict, optional): MMEngine init config.
    """

    def __init__(self,
                 model_name: str = 'ViT-B-32',
                 pretrained: Optional[str] = None,
                 model_cfg: Optional[dict] = None,
                 frozen: bool = True,
                 peft: Optional[List[dict]] = None,
                 adapter: Optional[dict] = None,
                 adapter_layers: Sequence[int] = (-1, ),
                 adapter_mode: str = 'tokens',
                 normalize: bool = True,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
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
        self.tower_kind = 'vision'
        self.embed_dim = visual.output_dim
        self.width = visual.transformer.width
        self.grid_size = tuple(visual.grid_size)
        self.pool_type = visual.pool_type
        self.register_buffer('mean', torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(std).view(1, 3, 1, 1), persistent=False)

        self.setup_peft(frozen, peft, adapter, adapter_layers, adapter_mode)

    def blocks(self) -> nn.ModuleList:
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
                mask: Optional[torch.Tensor] = None,
                return_tokens: bool = False) -> Dict[str, Optional[torch.Tensor]]:
        """Embeds every clip of a batch of videos.

        Args:
            imgs (Tensor): (B, T, K, 3, H, W) with K frames per clip, or
                (B, T, 3, H, W) with one frame per clip; uint8 in [0, 255] or
                float in [0, 1]. Frames are in time order (clip-major).
            mask (Tensor, optional): (B, T) bool, True at valid clips,
                right-padded; padded clips never influence valid ones through
                the PETL methods.
            return_tokens (bool): also return every frame's patch tokens (for a
                decoder's cross-attention memory).

        Returns:
            dict:
                - feats (Tensor): (B, T, E) projected CLIP image embedding per
                  clip (mean over its K frames), not L2-normalised.
                - aux (dict): the PETL methods' outputs, e.g. ``read_states``
                  (B, T, r) of READ, with graph.
                - tokens (Tensor): only with ``return_tokens``: (B, T, K, P, W) patch
                  tokens of the last block after ``ln_post`` (open_clip's
                  ``output_tokens``), P patches of width W per frame.
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
        layout = SequenceLayout(batch_size=b, num_frames=t * k, mask=frame_mask,
                                frames_per_clip=k, num_prefix_tokens=1,
                                grid_size=self.grid_size)
        tokens_flag = self.visual.output_tokens
        self.visual.output_tokens = tokens_flag or return_tokens
        try:
            with self.run_blocks(layout):
                pooled = self.visual(frames)
        finally:
            self.visual.output_tokens = tokens_flag
        tokens = None
        if isinstance(pooled, tuple):  # output_tokens=True towers
            pooled, tokens = pooled
        feats = pooled.reshape(b, t, k, -1).mean(dim=2)
        out = dict(feats=feats, aux=self.peft_outputs(layout))
        if return_tokens:
            out['tokens'] = tokens.reshape(b, t, k, *tokens.shape[1:])
        return out
