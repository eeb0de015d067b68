"""CLIP image tower applied to video frames, with PETL methods (READ, token mixing, ...)."""
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn
from mmengine.model import BaseModule
from open_clip.transformer import VisionTransformer

from mmvpeft.models.peft.layout import SequenceLayout
from mmvpeft.registry import MODELS
from mmvpeft.utils.fingerprint import DEFAULT_INIT_SEED
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
        init_seed (int, optional): seed of the random initialisation, drawn from a private
            generator (the global RNG is neither read nor advanced). With no ``pretrained``
            weights it *is* the frozen base: every build of the config (training, testing,
            ``init_grounder``, the demos) gets the same tower, and the frozen-base
            fingerprint records it. Defaults to 0; None draws from the global RNG.
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
        pooled_only_last_block (bool): only the CLS token of the last block reaches the
            output (``'tok'`` pooling), so that block computes attention, MLP and the
            methods' branches for CLS only (the same feats and READ states, tested).
            Needs ``'tok'`` pooling and no attention owner (token mixing) in the last
            block; otherwise it is off. Turn it off for outputs that need every token of
            the last block (per-frame token sequences). Defaults to False (opt-in:
            ``configs/read_tacos_budget.py`` turns it on).
        prefix_cache (str, optional): a frozen-prefix cache folder
            (``tools/build_prefix_cache.py``) this tower will be fed from
            (``forward(prefix_states=...)``); its key is checked against this tower
            when it is built, and a tower whose methods touch block 0 refuses it.
        init_cfg (dict, optional): MMEngine init config.
    """

    def __init__(self,
                 model_name: str = 'ViT-B-32',
                 pretrained: Optional[str] = None,
                 model_cfg: Optional[dict] = None,
                 init_seed: Optional[int] = DEFAULT_INIT_SEED,
                 frozen: bool = True,
                 peft: Optional[List[dict]] = None,
                 adapter: Optional[dict] = None,
                 adapter_layers: Sequence[int] = (-1, ),
                 adapter_mode: str = 'tokens',
                 normalize: bool = True,
                 pooled_only_last_block: bool = False,
                 prefix_cache: Optional[str] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        clip = create_open_clip(model_name, pretrained=pretrained, model_cfg=model_cfg,
                                init_seed=init_seed)
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

        self.image_size = tuple(visual.image_size) if isinstance(
            visual.image_size, (tuple, list)) else (visual.image_size, visual.image_size)
        self.setup_peft(frozen, peft, adapter, adapter_layers, adapter_mode)
        self.set_pooled_only(pooled_only_last_block)
        self.setup_prefix_cache(dict(model_name=model_name, pretrained=pretrained,
                                     model_cfg=model_cfg), prefix_cache)

    def blocks(self) -> nn.ModuleList:
        return self.visual.transformer.resblocks

    def set_pooled_only(self, enabled: bool) -> bool:
        """Enable the last-block CLS-only shortcut where it is exact; returns whether it is on."""
        from mmvpeft.models.peft.block import as_peft_block
        v = self.visual
        last = self.blocks()[-1]
        ok = (enabled and v.pool_type == 'tok' and v.attn_pool is None
              and not getattr(v, 'final_ln_after_pool', False)
              and not getattr(last, 'peft_sites', {}).get('attention')
              and not getattr(v, 'output_tokens', False))
        if ok:
            last = as_peft_block(last, len(self.blocks()) - 1)
        if hasattr(last, 'peft_sites'):
            last.peft_pooled_only = bool(ok)
        self.pooled_only = bool(ok)
        return self.pooled_only

    def named_prefix_parameters(self):
        """Parameters that run before the blocks: patch embedding, CLS, positions, ln_pre."""
        v = self.visual
        yield from (('conv1.' + n, p) for n, p in v.conv1.named_parameters())
        yield 'class_embedding', v.class_embedding
        yield 'positional_embedding', v.positional_embedding
        yield from (('ln_pre.' + n, p) for n, p in v.ln_pre.named_parameters())

    def _check_imgs(self, imgs: torch.Tensor) -> torch.Tensor:
        # The data contract (mmvpeft.datasets.transforms.formatting) keeps the K axis from
        # loading to here, so any other rank is a pipeline or caller bug, not a layout to guess.
        if imgs.dim() != 6 or imgs.shape[3] != 3:
            raise ValueError('imgs must be (B, T, K, 3, H, W): B videos, T time steps of K '
                             'frames (K = 1 when frames, not clips, are sampled), got '
                             f'{tuple(imgs.shape)}; add the K axis with imgs[:, :, None]')
        if tuple(imgs.shape[-2:]) != tuple(self.visual.image_size):
            raise ValueError(f'frames are {imgs.shape[-2]}x{imgs.shape[-1]}, the CLIP tower '
                             f'expects {self.visual.image_size[0]}x{self.visual.image_size[1]}')
        return imgs

    @torch.no_grad()
    def forward_prefix(self, imgs: torch.Tensor, start: Optional[int] = None) -> torch.Tensor:
        """Hidden states entering block ``start`` (default :meth:`prefix_start`).

        Args:
            imgs (Tensor): (B, T, K, 3, H, W) frames, as in
                :meth:`forward`.
            start (int, optional): first block left out.

        Returns:
            Tensor: (B, T, K, N, D) per-frame token states (N = 1 + patches), no graph.
        """
        imgs = self._check_imgs(imgs)
        b, t, k = imgs.shape[:3]
        start = self.prefix_start() if start is None else start
        x = self.visual._embeds(self._preprocess(imgs.reshape(b * t * k, *imgs.shape[3:])))
        layout = SequenceLayout(batch_size=b, num_frames=t * k, frames_per_clip=k,
                                num_prefix_tokens=1, grid_size=self.grid_size)
        with self.run_blocks(layout):
            for block in self.blocks()[:start]:
                x = block(x)
        return x.reshape(b, t, k, *x.shape[1:])

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
                imgs: Optional[torch.Tensor],
                mask: Optional[torch.Tensor] = None,
                prefix_states: Optional[torch.Tensor] = None,
                return_tokens: bool = False) -> Dict[str, Optional[torch.Tensor]]:
        """Embeds every clip of a batch of videos.

        Args:
            imgs (Tensor): (B, T, K, 3, H, W) with K frames per clip (K = 1 for
                sampled frames); uint8 in [0, 255] or
                float in [0, 1]. Frames are in time order (clip-major). None when
                ``prefix_states`` is given.
            mask (Tensor, optional): (B, T) bool, True at valid clips,
                right-padded; padded clips never influence valid ones through
                the PETL methods.
            prefix_states (Tensor, optional): (B, T, K, N, D) states entering
                block :meth:`prefix_start` (:meth:`forward_prefix`, or a prefix
                cache); the tower then runs only the blocks from there on.
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
        if return_tokens and self.pooled_only:
            raise ValueError('return_tokens needs every token of the last block, but this '
                             'tower was built with pooled_only_last_block=True (CLS only); '
                             'build it with pooled_only_last_block=False')
        if prefix_states is not None:
            return self._forward_from_prefix(prefix_states, mask, return_tokens)
        imgs = self._check_imgs(imgs)
        b, t, k, c, h, w = imgs.shape
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

    def _forward_from_prefix(self, prefix: torch.Tensor, mask: Optional[torch.Tensor],
                             return_tokens: bool = False) -> Dict:
        """:meth:`forward` from (B, T, K, N, D) states entering block :meth:`prefix_start`."""
        if prefix.dim() != 5 or prefix.shape[-1] != self.width:
            raise ValueError(f'prefix_states must be (B, T, K, N, {self.width}), '
                             f'got {tuple(prefix.shape)}')
        b, t, k, n, d = prefix.shape
        frame_mask = None
        if mask is not None:
            if mask.shape != (b, t):
                raise ValueError(f'mask must be (B, T) = {(b, t)}, got {tuple(mask.shape)}')
            frame_mask = mask.bool().repeat_interleave(k, dim=1)
        x = prefix.reshape(b * t * k, n, d).to(self.visual.conv1.weight.dtype)
        layout = SequenceLayout(batch_size=b, num_frames=t * k, mask=frame_mask,
                                frames_per_clip=k, num_prefix_tokens=1,
                                grid_size=self.grid_size)
        with self.run_blocks(layout):
            for block in self.blocks()[self.prefix_start():]:
                x = block(x)
        pooled, tokens = self.visual._pool(x)
        if self.visual.proj is not None:
            pooled = pooled @ self.visual.proj
        feats = pooled.reshape(b, t, k, -1).mean(dim=2)
        out = dict(feats=feats, aux=self.peft_outputs(layout))
        if return_tokens:
            out['tokens'] = tokens.reshape(b, t, k, *tokens.shape[1:])
        return out
