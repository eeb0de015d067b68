"""What a CLIP tower shares with every PETL method: blocks, freezing, the train-mode rule.

A tower knows the PETL *contract* (:mod:`mmvpeft.models.peft.base`), never a method by name.
"""
from typing import Iterator, List, Optional, Sequence

from torch import nn

from mmvpeft.models.peft.base import BasePEFTMethod, apply_peft, collect_outputs
from mmvpeft.models.peft.block import peft_context
from mmvpeft.models.peft.layout import SequenceLayout
from mmvpeft.models.peft.read import legacy_read_cfg
from . import prefix_cache as _pc


class PEFTTowerMixin:
    """Mixin for a CLIP tower whose transformer blocks are ``self.blocks()``.

    A frozen tower keeps every pretrained parameter fixed and its modules in eval mode (no
    patch dropout) even while the model trains; the modules its PETL methods train follow the
    requested mode.
    """

    frozen: bool
    tower_kind: str  # 'vision' or 'text'
    width: int

    def blocks(self) -> nn.ModuleList:
        raise NotImplementedError

    def setup_peft(self, frozen: bool, peft: Optional[Sequence[dict]],
                   adapter: Optional[dict] = None, adapter_layers: Sequence[int] = (-1, ),
                   adapter_mode: Optional[str] = None) -> None:
        """Applies ``peft`` (plus the legacy ``adapter=`` READ arguments) and freezes."""
        cfgs = list(peft or [])
        legacy = legacy_read_cfg(adapter, adapter_layers, adapter_mode)
        if legacy is not None:
            cfgs.insert(0, legacy)
        self.frozen = frozen
        # A plain list, not a ModuleList: the methods' modules already live in the blocks.
        self.peft_methods: List[BasePEFTMethod] = apply_peft(self, cfgs, frozen)
        self.train(self.training)

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        """Recompute every block's activations in backward instead of keeping them.

        Non-reentrant (a frozen stem still passes gradients to the methods after it), and
        exact for every PETL method: recomputes replay the layout the block first ran with
        (:mod:`mmvpeft.models.peft.checkpoint`). Blocks that record no graph (frozen blocks
        before the first trainable one, or a frozen-prefix cache's cut) run plainly, so with a
        prefix cache the blocks after the cut are the ones checkpointed. Applies to training
        forwards only: under ``torch.no_grad()`` nothing is checkpointed.
        """
        from mmvpeft.models.peft.block import as_peft_block
        self.grad_checkpointing = bool(enabled)
        for i, block in enumerate(self.blocks()):
            if enabled:  # a plain block becomes a PETL block with no site (same computation)
                block = as_peft_block(block, i)
            if hasattr(block, 'peft_sites'):
                block.peft_checkpoint = bool(enabled)

    def named_prefix_parameters(self):
        """(name, parameter) pairs of what runs before the first block (embeddings)."""
        raise NotImplementedError

    def prefix_parameters(self):
        return (p for _, p in self.named_prefix_parameters())

    def prefix_start(self) -> int:
        """First block that can change in training; the states entering it can be cached
        (:mod:`mmvpeft.models.backbones.prefix_cache`)."""
        return _pc.prefix_start(self)

    def prefix_key(self) -> dict:
        """Model side of this tower's prefix-cache key (raises when no cache is possible)."""
        return _pc.prefix_key(self, self.source_cfg, _pc.require_prefix_start(self))

    def setup_prefix_cache(self, source_cfg: dict, cache_dir: Optional[str]) -> None:
        """Remember the weights' source; with ``cache_dir``, check that cache fits now."""
        self.source_cfg = source_cfg
        self.prefix_cache = cache_dir
        if cache_dir is not None:
            _pc.check_meta(_pc.read_meta(cache_dir), self.prefix_key(), _pc.MODEL_FIELDS,
                           f'{cache_dir} ({self.tower_kind} tower)')

    def run_blocks(self, layout: SequenceLayout):
        """Context manager: the PETL blocks see ``layout`` during one tower forward."""
        return peft_context(self.blocks(), layout)

    def peft_outputs(self, layout: SequenceLayout) -> dict:
        return collect_outputs(self.peft_methods, layout)

    def peft_modules(self) -> Iterator[nn.Module]:
        for m in getattr(self, 'peft_methods', ()):
            yield from m.train_modules(self)

    def merge_peft(self) -> None:
        """Fold mergeable methods (LoRA) into the pretrained weights, for inference."""
        for m in self.peft_methods:
            if hasattr(m, 'merge') and getattr(m, 'mergeable', False):
                m.merge(self)

    def train(self, mode: bool = True):
        super().train(mode)
        if getattr(self, 'frozen', False):
            for module in self.children():
                module.eval()
            for module in self.peft_modules():
                module.train(mode)
        return self
