"""CLIP text tower with PETL methods (READ over words, LoRA, ...)."""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmvpeft.models.peft.layout import SequenceLayout, lengths_from_mask
from mmvpeft.registry import MODELS
from mmvpeft.utils.fingerprint import DEFAULT_INIT_SEED
from .open_clip_utils import create_open_clip
from .prefix_cache import TextPrefixStore
from .tower import PEFTTowerMixin


@MODELS.register_module()
class CLIPTextBackbone(PEFTTowerMixin, BaseModule):
    """Per-token and pooled CLIP text features, with PETL methods in its blocks.

    Keeps only the text tower, under the CLIP names (``token_embedding``,
    ``positional_embedding``, ``transformer``, ``ln_final``,
    ``text_projection``), so the backbone's state dict keys are the CLIP
    checkpoint's text keys plus the methods' modules. Batches may be padded to
    any length up to the context length: the causal attention mask of CLIP and
    the word mask every method sees keep padding out of every valid position, so
    the result equals ``encode_text`` on fixed-length (77) input.

    Args:
        model_name, pretrained, model_cfg, init_seed, frozen, peft, adapter, adapter_layers,
        prefix_cache, init_cfg: as in :class:`CLIPVisionBackbone` (with the same
            ``model_cfg`` and ``init_seed``, the two towers are those of one CLIP model);
            READ runs its recurrence over words, masked by ``text_mask``.
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
                 prefix_cache: Optional[str] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        clip = create_open_clip(model_name, pretrained=pretrained, model_cfg=model_cfg,
                                init_seed=init_seed)
        if clip.attn_mask is None:
            # Without a causal mask, valid tokens attend to padding, so per-batch
            # padding would change the pretrained model's outputs.
            raise ValueError('CLIPTextBackbone needs a causal text tower (no_causal_mask=False)')
        if clip.text_pool_type not in ('argmax', 'eos'):
            raise ValueError(f"text pool type {clip.text_pool_type!r} is not supported; "
                             "CLIPTextBackbone pools the EOT token ('argmax'/'eos')")
        if not clip.transformer.batch_first:
            raise ValueError('CLIPTextBackbone needs a batch_first open_clip transformer')
        self.token_embedding = clip.token_embedding
        self.positional_embedding = clip.positional_embedding
        self.transformer = clip.transformer
        self.ln_final = clip.ln_final
        self.text_projection = clip.text_projection
        self.register_buffer('attn_mask', clip.attn_mask, persistent=False)
        self.context_length = clip.context_length
        self.width = clip.transformer.width
        proj = clip.text_projection
        if proj is None:
            self.embed_dim = self.width
        else:
            self.embed_dim = proj.out_features if isinstance(proj, nn.Linear) else proj.shape[1]
        del clip  # drops the image tower

        self.tower_kind = 'text'
        self.setup_peft(frozen, peft, adapter, adapter_layers)
        self.setup_prefix_cache(dict(model_name=model_name, pretrained=pretrained,
                                     model_cfg=model_cfg), prefix_cache)

    def blocks(self) -> nn.ModuleList:
        return self.transformer.resblocks

    def named_prefix_parameters(self):
        """Parameters that run before the blocks: token and positional embeddings."""
        yield from (('token_embedding.' + n, p)
                    for n, p in self.token_embedding.named_parameters())
        yield 'positional_embedding', self.positional_embedding

    def _check_text(self, text_tokens, text_mask):
        if text_tokens.dim() != 2:
            raise ValueError(f'text_tokens must be (B, L), got {tuple(text_tokens.shape)}')
        if text_tokens.shape[1] > self.context_length:
            raise ValueError(f'{text_tokens.shape[1]} tokens exceed the context length '
                             f'{self.context_length}')
        if text_mask.shape != text_tokens.shape:
            raise ValueError(f'text_mask {tuple(text_mask.shape)} does not match '
                             f'text_tokens {tuple(text_tokens.shape)}')

    @torch.no_grad()
    def forward_prefix(self, text_tokens: torch.Tensor, text_mask: torch.Tensor,
                       start: Optional[int] = None) -> torch.Tensor:
        """Hidden states entering block ``start`` (default :meth:`prefix_start`).

        The blocks are causal, so a valid token's state does not depend on the padding.

        Returns:
            Tensor: (B, L, W), no graph.
        """
        self._check_text(text_tokens, text_mask)
        length = text_tokens.shape[1]
        start = self.prefix_start() if start is None else start
        cast_dtype = self.transformer.get_cast_dtype()
        x = self.token_embedding(text_tokens).to(cast_dtype)
        x = x + self.positional_embedding[:length].to(cast_dtype)
        layout = SequenceLayout(batch_size=len(text_tokens), mask=text_mask.bool())
        with self.run_blocks(layout):
            for block in self.blocks()[:start]:
                x = block(x, attn_mask=self.attn_mask[:length, :length])
        return x

    def forward(self, text_tokens: Optional[torch.Tensor], text_mask: torch.Tensor,
                prefix_states: Optional[torch.Tensor] = None
                ) -> Dict[str, Optional[torch.Tensor]]:
        """Encodes a batch of tokenised queries.

        Args:
            text_tokens (Tensor): (B, L) int64 token ids (CLIP tokenizer; EOT is
                the last valid token), L <= context length. None when
                ``prefix_states`` is given.
            text_mask (Tensor): (B, L) bool, True up to and including EOT,
                right-padded.
            prefix_states (Tensor, optional): (B, L, W) states entering block
                :meth:`prefix_start` (:meth:`forward_prefix` or a prefix cache);
                only the blocks from there on run. A tower built with ``prefix_cache``
                looks them up by ``text_tokens`` itself.

        Returns:
            dict:
                - feats (Tensor): (B, L, W) per-token features after ``ln_final``.
                - pooled (Tensor): (B, E) projected EOT feature (as
                  ``encode_text``, not L2-normalised).
                - mask (Tensor): (B, L) bool, the valid-token mask.
                - aux (dict): the PETL methods' outputs, e.g. ``read_states``
                  (B, L, r) of READ, with graph, zeros at padding.
        """
        if prefix_states is not None:
            if prefix_states.dim() != 3 or prefix_states.shape[:2] != text_mask.shape:
                raise ValueError(f'prefix_states must be (B, L, W) matching text_mask '
                                 f'{tuple(text_mask.shape)}, got {tuple(prefix_states.shape)}')
        else:
            self._check_text(text_tokens, text_mask)
        b, length = text_mask.shape
        text_mask = text_mask.bool()
        lengths = lengths_from_mask(text_mask)
        if (lengths == 0).any():
            raise ValueError('every query needs at least one valid token (its EOT)')

        cast_dtype = self.transformer.get_cast_dtype()
        layout = SequenceLayout(batch_size=b, mask=text_mask)
        if prefix_states is None and self.prefix_cache is not None:
            # Built with a frozen-prefix cache: these tokens' states, looked up by their ids.
            if getattr(self, '_prefix_store', None) is None:
                self._prefix_store = TextPrefixStore(self.prefix_cache)
            prefix_states = self._prefix_store.lookup(text_tokens, text_mask, cast_dtype)
        if prefix_states is not None:
            x = prefix_states.to(cast_dtype)
            with self.run_blocks(layout):
                for block in self.blocks()[self.prefix_start():]:
                    x = block(x, attn_mask=self.attn_mask[:length, :length])
        else:
            x = self.token_embedding(text_tokens).to(cast_dtype)
            x = x + self.positional_embedding[:length].to(cast_dtype)
            with self.run_blocks(layout):
                x = self.transformer(x, attn_mask=self.attn_mask[:length, :length])
        feats = self.ln_final(x)

        # EOT is the last valid token; indexing by the mask (not argmax of ids)
        # keeps whatever sits in the padding out of the pooled feature.
        pooled = feats[torch.arange(b, device=feats.device), lengths - 1]
        if isinstance(self.text_projection, nn.Linear):
            pooled = self.text_projection(pooled)
        elif self.text_projection is not None:
            pooled = pooled @ self.text_projection
        return dict(feats=feats, pooled=pooled, mask=text_mask, aux=self.peft_outputs(layout))
