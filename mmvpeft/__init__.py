"""mmvpeft: parameter-efficient transfer from image-language to video-language models."""
from .utils.checkpoint import allow_mmengine_checkpoint_types, use_atomic_checkpoint_writes
from .version import __version__

# Both are process-wide and additive: checkpoints that MMEngine writes load under torch's
# weights_only default, and local writes become atomic. See mmvpeft/utils/checkpoint.py.
allow_mmengine_checkpoint_types()
use_atomic_checkpoint_writes()

__all__ = ['__version__']
