"""Activation checkpointing that keeps PETL blocks exact: layouts, READ states, frozen stems.

``torch.utils.checkpoint`` frees a region's activations after the forward and runs the region
again during backward. Three things would go wrong with PETL blocks if that were done naively:

- The block reads its :class:`~mmvpeft.models.peft.layout.SequenceLayout` from
  ``block.peft_layout``, which the tower clears when its forward ends, long before backward.
- Methods write into the layout while they run: READ appends its states to
  ``layout.aux['read_states_raw']``, a visual prompt raises ``num_prefix_tokens``. A recompute
  writing into the live layout would append a second set of states (PVLA would then align the
  wrong layer) or insert prompts twice.
- With the reentrant variant, a region whose input does not require grad (the output of a
  frozen stem) passes no gradient to the trainable parameters inside it.

So every recompute runs on a private copy of the layout as it was when the block first ran,
and ``use_reentrant=False`` is used throughout. The tensors the first forward stored in the
layout (READ's states, which PVLA reads) keep their autograd graph: backward through them
recomputes the region's saved activations like backward through the block's output does.
"""
import contextlib
import copy
import dataclasses
from typing import Callable, Iterable, Iterator, List, Optional

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .layout import SequenceLayout

# Callbacks that see the tensor inputs of every checkpointed region while active: a region
# keeps its inputs alive until backward (to recompute from them), so a measurement of what a
# forward holds for backward (mmvpeft.apis.benchmarking.saved_bytes) must count them too.
_INPUT_OBSERVERS: List[Callable[[torch.Tensor], None]] = []


@contextlib.contextmanager
def observe_checkpoint_inputs(callback: Callable[[torch.Tensor], None]) -> Iterator[None]:
    """Calls ``callback(tensor)`` for each tensor input of a region checkpointed inside."""
    _INPUT_OBSERVERS.append(callback)
    try:
        yield
    finally:
        _INPUT_OBSERVERS.remove(callback)


def _observe(args) -> None:
    for cb in _INPUT_OBSERVERS:
        for a in args:
            if isinstance(a, torch.Tensor):
                cb(a)


def layout_snapshot(layout: Optional[SequenceLayout]) -> Optional[SequenceLayout]:
    """A copy of ``layout`` whose ``aux`` dict (and the lists / dicts in it) are new
    containers, so writes to the copy never reach ``layout``. Tensors are shared."""
    if layout is None:
        return None
    aux = {k: copy.copy(v) if isinstance(v, (list, dict)) else v for k, v in layout.aux.items()}
    return dataclasses.replace(layout, aux=aux)


@contextlib.contextmanager
def _keep_last_states(modules: Iterable[nn.Module]) -> Iterator[None]:
    """Restores ``last_states`` (READ adapters) after a recompute overwrote them, so the
    adapters keep pointing at the first forward's states, not at the backward's copies."""
    held = [(m, m.last_states) for m in modules if hasattr(m, 'last_states')]
    try:
        yield
    finally:
        for m, states in held:
            m.last_states = states


@contextlib.contextmanager
def _replay_layout(block: nn.Module, snapshot: Optional[SequenceLayout]) -> Iterator[None]:
    """Runs a recompute of ``block`` on a fresh copy of the layout it first ran with."""
    saved = block.peft_layout
    block.peft_layout = layout_snapshot(snapshot)
    try:
        with _keep_last_states(block.modules()):
            yield
    finally:
        block.peft_layout = saved


def needs_checkpoint(module: nn.Module, *inputs: Optional[torch.Tensor]) -> bool:
    """Whether running ``module`` on ``inputs`` records a graph worth checkpointing: grad mode
    is on and an input or a parameter of the module requires grad (a frozen block on a
    frozen stem's output saves nothing, so it runs plainly)."""
    if not torch.is_grad_enabled():
        return False
    if any(t is not None and t.requires_grad for t in inputs):
        return True
    return any(p.requires_grad for p in module.parameters())


def checkpoint_block(block: nn.Module, fn: Callable, *args) -> torch.Tensor:
    """``fn(*args)`` (a forward of PETL ``block``) under non-reentrant checkpointing, with
    its recompute run on a snapshot of ``block.peft_layout`` (see the module docstring)."""
    snapshot = layout_snapshot(block.peft_layout)

    def contexts():
        return contextlib.nullcontext(), _replay_layout(block, snapshot)

    _observe(args)
    return checkpoint(fn, *args, use_reentrant=False, context_fn=contexts)


def checkpoint_module(module: nn.Module, *args, **kwargs) -> torch.Tensor:
    """``module(*args, **kwargs)`` under non-reentrant checkpointing (a layer without a PETL
    layout: the cross-modal encoder's layers, a decoder's cross-attention blocks). READ
    adapters inside keep the first forward's ``last_states``."""
    def contexts():
        return contextlib.nullcontext(), _keep_last_states(module.modules())

    _observe(list(args) + list(kwargs.values()))
    return checkpoint(module, *args, use_reentrant=False, context_fn=contexts, **kwargs)


def maybe_checkpoint(enabled: bool, module: nn.Module, *args, **kwargs) -> torch.Tensor:
    """:func:`checkpoint_module` when ``enabled`` and :func:`needs_checkpoint`, else a plain
    call."""
    tensors = [a for a in list(args) + list(kwargs.values()) if isinstance(a, torch.Tensor)]
    if enabled and needs_checkpoint(module, *tensors):
        return checkpoint_module(module, *args, **kwargs)
    return module(*args, **kwargs)
