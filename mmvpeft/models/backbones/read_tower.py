"""Freezing, READ injection and train/eval rules shared by the CLIP towers."""
from typing import List, Optional, Sequence

from torch import nn

from mmvpeft.models.adapters.inject import inject_read_adapters, read_blocks
from mmvpeft.models.adapters.read_adapter import ReadAdapter


class ReadTowerMixin:
    """Mixin for an ``nn.Module`` tower whose blocks are ``self.resblocks()``.

    A frozen tower keeps every pretrained parameter fixed and its modules in eval mode (no
    patch dropout) even while the model trains; only its READ adapters train and follow the
    requested mode.
    """

    frozen: bool

    def resblocks(self) -> nn.ModuleList:
        raise NotImplementedError

    def setup_read(self, frozen: bool, adapter: Optional[dict], layers: Sequence[int],
                   width: int) -> None:
        self.frozen = frozen
        if frozen:
            self.requires_grad_(False)
        if adapter is not None:
            # Injected after freezing, so the new adapter parameters stay trainable.
            inject_read_adapters(self.resblocks(), layers, adapter, width)
        self.state_dim = self.adapters[0].hidden_dim if self.adapters else None
        self.train(self.training)

    @property
    def adapters(self) -> List[ReadAdapter]:
        """The READ adapters, in block order."""
        return [b.read_adapter for b in read_blocks(self.resblocks())]

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            for module in self.children():
                module.eval()
            for adapter in self.adapters:
                adapter.train(mode)
        return self
