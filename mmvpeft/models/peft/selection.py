"""Selection methods: they add no module and only choose which pretrained weights train.

Nothing is attached to a block (no class swap); :func:`~.base.apply_peft` sets
``requires_grad`` from :meth:`~.base.BasePEFTMethod.trainable`. Only pretrained parameters
are selected (:func:`~.base.pretrained_parameters`): modules of other methods in the same
tower are trained by those methods.
"""
from typing import Iterator, List

import torch.nn as nn

from mmvpeft.registry import MODELS
from .base import BasePEFTMethod, pretrained_parameters


def _named_pretrained(module: nn.Module) -> Iterator[tuple]:
    keep = {id(p) for p in pretrained_parameters(module)}
    for name, p in module.named_parameters():
        if id(p) in keep:
            yield name, p


def _is_bias(name: str) -> bool:
    leaf = name.rsplit('.', 1)[-1]
    return leaf == 'bias' or leaf.endswith('_bias')  # nn.MultiheadAttention.in_proj_bias


@MODELS.register_module()
class BitFit(BasePEFTMethod):
    """BitFit (Ben Zaken et al., "BitFit: Simple Parameter-efficient Fine-tuning for
    Transformer-based Masked Language-models", ACL 2022): train the bias terms only.

    As in the paper, every bias counts, LayerNorm biases included (q/k/v ``in_proj_bias``,
    ``out_proj.bias``, ``c_fc.bias``, ``c_proj.bias``, ``ln_*.bias``).

    Args:
        layers: blocks whose biases train. ``None`` (default) = every block plus every other
            bias of the tower (``ln_pre`` / ``ln_post`` in vision, ``ln_final`` in text).
        include_norm (bool): also train the LayerNorm weights (gains) in the same scope.
            Defaults to False.
    """

    def __init__(self, layers=None, include_norm: bool = False):
        super().__init__(layers)
        self.include_norm = include_norm

    def apply(self, tower: nn.Module) -> None:
        self.blocks_of(tower)  # validates layers; nothing to attach

    def _scopes(self, tower: nn.Module) -> List[nn.Module]:
        if self.layers is None:
            return [tower]
        return [tower.blocks()[i] for i in self.block_indices]

    def trainable(self, tower: nn.Module) -> Iterator[nn.Parameter]:
        for scope in self._scopes(tower):
            norms = set()
            if self.include_norm:
                norms = {id(p) for m in scope.modules()
                         if isinstance(m, (nn.LayerNorm, nn.GroupNorm)) for p in m.parameters()}
            for name, p in _named_pretrained(scope):
                if _is_bias(name) or id(p) in norms:
                    yield p

    def train_modules(self, tower: nn.Module) -> list:
        return []  # biases do not depend on train/eval mode; keep CLIP in eval

    def __repr__(self) -> str:
        return (f'{self.name}(layers={self.layers if self.layers is None else self.block_indices}'
                f', include_norm={self.include_norm})')


@MODELS.register_module()
class PartialFinetune(BasePEFTMethod):
    """Partial fine-tuning: every pretrained parameter of the chosen blocks trains (the
    "partial" baseline of READ, Nguyen et al., AAAI 2024; the budget of Token Mixing,
    Liu et al., AAAI 2023).

    Args:
        layers: blocks to fine-tune. Defaults to (-1, ), the last block; ``None`` = all.

    The chosen blocks follow the train/eval mode of a frozen tower.
    """
    default_layers = (-1, )

    def __init__(self, layers=(-1, )):
        super().__init__(layers)
        self._blocks: List[nn.Module] = []

    def apply(self, tower: nn.Module) -> None:
        self._blocks = [tower.blocks()[i] for i in self.blocks_of(tower)]

    def trainable(self, tower: nn.Module) -> Iterator[nn.Parameter]:
        for block in self._blocks:
            yield from pretrained_parameters(block)

    def train_modules(self, tower: nn.Module) -> list:
        return list(self._blocks)


@MODELS.register_module()
class LinearProbe(BasePEFTMethod):
    """Linear probing (Radford et al., "Learning Transferable Visual Models From Natural
    Language Supervision", ICML 2021, its CLIP evaluation protocol): the tower is a fixed
    feature extractor and only the task head trains. Must be the tower's only method.
    """
    alone = True

    def apply(self, tower: nn.Module) -> None:
        pass

    def trainable(self, tower: nn.Module) -> Iterator[nn.Parameter]:
        return iter(())

    def train_modules(self, tower: nn.Module) -> list:
        return []

    def __repr__(self) -> str:
        return f'{self.name}()'


@MODELS.register_module()
class FullFinetune(BasePEFTMethod):
    """Full fine-tuning (the upper baseline of Token Mixing and READ): every parameter of
    the tower trains, other methods' modules included.

    The whole tower follows the requested train/eval mode (patch dropout and dropout act
    while training): ``train_modules`` returns the tower's children, not the tower itself,
    because the tower's own ``train`` calls ``train`` on these modules (no recursion).
    """

    def apply(self, tower: nn.Module) -> None:
        pass

    def trainable(self, tower: nn.Module) -> Iterator[nn.Parameter]:
        return tower.parameters()

    def train_modules(self, tower: nn.Module) -> list:
        return list(tower.children())

    def __repr__(self) -> str:
        return f'{self.name}()'
