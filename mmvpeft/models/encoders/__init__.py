from .cross_modal_encoder import CrossModalEncoder, TransformerLayer
from .temporal_pool import TemporalPool, masked_mean

__all__ = ['CrossModalEncoder', 'TransformerLayer', 'TemporalPool', 'masked_mean']
