from .cross_modal_encoder import CrossModalEncoder, TransformerLayer

__all__ = ['CrossModalEncoder', 'TransformerLayer']
