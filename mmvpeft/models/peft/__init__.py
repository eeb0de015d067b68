"""The PETL layer: every method attaches to open_clip blocks through one contract.

See :mod:`.base` for the contract and :func:`apply_peft`, :mod:`.block` for the sites.
"""
from .base import BasePEFTMethod, apply_peft, pretrained_parameters, resolve_layers
from .block import PEFTBlock, attach, peft_blocks, peft_context
from .layout import SequenceLayout, lengths_from_mask
from .read import READ, ReadAdapter
from .token_mixing import TokenMixing, token_mixing_attention
from .adapter import HoulsbyAdapter, STAdapter
from .lora import LoRA
from .prompt import VisualPrompt
from .selection import BitFit, FullFinetune, LinearProbe, PartialFinetune

__all__ = [
    'BasePEFTMethod', 'apply_peft', 'pretrained_parameters', 'resolve_layers', 'PEFTBlock',
    'attach', 'peft_blocks', 'peft_context', 'SequenceLayout', 'lengths_from_mask', 'READ',
    'ReadAdapter', 'TokenMixing', 'token_mixing_attention', 'LoRA', 'HoulsbyAdapter',
    'STAdapter', 'VisualPrompt', 'BitFit', 'PartialFinetune', 'LinearProbe', 'FullFinetune'
]
