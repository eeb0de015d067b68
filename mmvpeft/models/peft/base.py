"""The PETL contract and :func:`apply_peft`, the one place that decides what trains.

A tower (``CLIPVisionBackbone``, ``CLIPTextBackbone``) offers ``blocks()``, ``width``,
``tower_kind`` ('vision' or 'text') and, for vision, ``grid_size``. A method is a small object
built from a config (``dict(type='READ', layers=(-1, ), hidden_dim=32)``) that

- attaches per-block modules at named sites of those blocks (:mod:`.block`),
- names the parameters it trains (:meth:`BasePEFTMethod.trainable`) and the modules that follow
  the train/eval mode of a frozen tower (:meth:`BasePEFTMethod.train_modules`),
- returns per-forward outputs (READ's states for PVLA) from the shared layout
  (:meth:`BasePEFTMethod.outputs`); the tower puts them in the ``aux`` dict of its output.

Methods are not ``nn.Module``: the modules they add live inside the blocks, so each parameter
appears once in the state dict, under the block it belongs to.
"""
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Union

import torch.nn as nn

from mmvpeft.registry import MODELS
from .block import attach
from .layout import SequenceLayout

LayerSpec = Union[int, Sequence[int], None]


def resolve_layers(layers: LayerSpec, depth: int, what: str = 'layer') -> List[int]:
    """Block indices (negative counts from the end) -> sorted non-negative positions.

    Args:
        layers: an int, a sequence of ints, or ``None`` for every block.
        depth: number of blocks in the tower.
        what: name used in messages.

    Raises:
        TypeError, IndexError, ValueError: a non-int, an out-of-range or a repeated index.
    """
    if layers is None:
        return list(range(depth))
    if isinstance(layers, int) and not isinstance(layers, bool):
        layers = (layers, )
    resolved = []
    for idx in layers:
        if not isinstance(idx, int) or isinstance(idx, bool):
            raise TypeError(f'{what} indices must be ints, got {idx!r}')
        if not -depth <= idx < depth:
            raise IndexError(f'{what} index {idx} is out of range for a transformer of depth '
                             f'{depth} (valid: {-depth}..{depth - 1})')
        pos = idx % depth
        if pos in resolved:
            raise ValueError(f'{what} {idx} (block {pos}) is listed twice in {list(layers)}')
        resolved.append(pos)
    return sorted(resolved)


class BasePEFTMethod:
    """Base of every PETL method.

    Class attributes a method sets:
        towers (tuple): tower kinds it supports (``'vision'``, ``'text'``).
        incompatible (tuple): method names that cannot share a tower with it (checked at
            build, the error names both).
        alone (bool): must be the only method of its tower (e.g. a linear probe).

    Args:
        layers: blocks to act on (negative counts from the end); ``None`` = the method's
            default (:attr:`default_layers`).
    """
    towers = ('vision', 'text')
    incompatible: tuple = ()
    alone = False
    default_layers: LayerSpec = None

    def __init__(self, layers: LayerSpec = 'default'):
        self.layers = self.default_layers if layers == 'default' else layers
        self.added: List[nn.Module] = []
        self.block_indices: List[int] = []

    @property
    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f'{self.name}(layers={self.block_indices or self.layers})'

    # ---- what a method implements --------------------------------------------------------
    def apply(self, tower: nn.Module) -> None:
        """Attach to ``tower`` (register modules at block sites)."""
        raise NotImplementedError

    def trainable(self, tower: nn.Module) -> Iterable[nn.Parameter]:
        """Parameters this method trains; by default those of the modules it added."""
        for m in self.added:
            yield from m.parameters()

    def train_modules(self, tower: nn.Module) -> Iterable[nn.Module]:
        """Modules of a frozen tower that follow its train/eval mode."""
        return list(self.added)

    def outputs(self, layout: SequenceLayout) -> Dict[str, object]:
        """Per-forward outputs for the tower's ``aux`` dict (read from ``layout.aux``)."""
        return {}

    def merge(self, tower: nn.Module) -> None:
        """Fold the method into the pretrained weights (inference only)."""
        raise NotImplementedError(f'{self.name} cannot be merged into the base weights')

    # ---- helpers for subclasses ----------------------------------------------------------
    def blocks_of(self, tower: nn.Module) -> List[int]:
        self.block_indices = resolve_layers(self.layers, len(tower.blocks()),
                                            what=f'{self.name} layer')
        return self.block_indices

    def add(self, tower: nn.Module, index: int, sites: Sequence[str], name: str,
            module: nn.Module) -> nn.Module:
        """Register ``module`` as ``blocks()[index].<name>`` at each of ``sites``."""
        block = tower.blocks()[index]
        for i, site in enumerate(sites):
            attach(block, index, site, name, module if i == 0 else None, self.name)
        self.added.append(module)
        return module


def build_peft_method(cfg: Union[dict, BasePEFTMethod]) -> BasePEFTMethod:
    if isinstance(cfg, BasePEFTMethod):
        return cfg
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f'a PETL method config must be a dict with a type key, got {cfg!r}')
    method = MODELS.build(cfg)
    if not isinstance(method, BasePEFTMethod):
        raise TypeError(f"type={cfg['type']!r} builds {type(method).__name__}, which is not a "
                        'PETL method (BasePEFTMethod)')
    return method


def apply_peft(tower: nn.Module, cfgs: Optional[Sequence[Union[dict, BasePEFTMethod]]],
               frozen: bool = True) -> List[BasePEFTMethod]:
    """Builds and attaches PETL methods to ``tower``, then sets what trains.

    This is the one place that sets ``requires_grad`` in a tower: with ``frozen`` every
    parameter is frozen except those some method names in :meth:`~BasePEFTMethod.trainable`;
    without it everything trains (full fine-tuning plus whatever the methods add).

    Args:
        tower: a module with ``blocks()``, ``width`` and ``tower_kind``.
        cfgs: method configs (or built methods), applied in order.
        frozen: freeze the pretrained weights.

    Returns:
        list[BasePEFTMethod]: the applied methods.

    Raises:
        ValueError: a method on a tower kind it does not support, two incompatible methods,
            two owners of an exclusive site (each message names both methods).
    """
    methods = [build_peft_method(c) for c in (cfgs or ())]
    kind = tower.tower_kind
    for m in methods:
        if kind not in m.towers:
            raise ValueError(f'{m.name} does not apply to a {kind} tower (supports: '
                             f'{", ".join(m.towers)})')
        if m.alone and len(methods) > 1:
            others = [o.name for o in methods if o is not m]
            raise ValueError(f'{m.name} must be the only PETL method of its tower; '
                             f'{m.name} and {others[0]} were both given')
    for i, a in enumerate(methods):
        for b in methods[i + 1:]:
            if b.name in a.incompatible or a.name in b.incompatible:
                raise ValueError(f'{a.name} and {b.name} cannot be combined in one tower: '
                                 f'{_why(a, b)}')
    for m in methods:
        m.apply(tower)

    trainable = {id(p) for m in methods for p in m.trainable(tower)}
    for p in tower.parameters():
        p.requires_grad_(not frozen or id(p) in trainable)
    return methods


def _why(a: BasePEFTMethod, b: BasePEFTMethod) -> str:
    reasons = getattr(a, 'incompatible_reason', {}) | getattr(b, 'incompatible_reason', {})
    return reasons.get(b.name) or reasons.get(a.name) or 'they change the same computation'


def collect_outputs(methods: Sequence[BasePEFTMethod], layout: SequenceLayout) -> dict:
    """Merges the methods' per-forward outputs into one ``aux`` dict."""
    aux = {}
    for m in methods:
        for key, value in m.outputs(layout).items():
            if key in aux and aux[key] is not value:
                raise ValueError(f'two PETL methods both return the output {key!r}')
            aux[key] = value
    return aux


def trainable_parameters(methods: Sequence[BasePEFTMethod], tower: nn.Module
                         ) -> Iterator[nn.Parameter]:
    seen = set()
    for m in methods:
        for p in m.trainable(tower):
            if id(p) not in seen:
                seen.add(id(p))
                yield p


def pretrained_parameters(module: nn.Module) -> Iterator[nn.Parameter]:
    """Parameters of ``module`` that are pretrained (CLIP) weights, not PETL modules.

    Every module a method adds to a block is registered at a site of that block, so the
    block's ``peft_sites`` names them all.
    """
    added = set()
    for sub in module.modules():
        for names in getattr(sub, 'peft_sites', {}).values():
            added.update(id(getattr(sub, n)) for n in names if hasattr(sub, n))
    skip = {id(p) for sub in module.modules() if id(sub) in added for p in sub.parameters()}
    for p in module.parameters():
        if id(p) not in skip:
            yield p
