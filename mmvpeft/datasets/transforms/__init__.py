from .feature_loading import LoadClipFeatures, LoadTextFeatures
from .formatting import PackMomentInputs

__all__ = ['LoadClipFeatures', 'LoadTextFeatures', 'PackMomentInputs']
