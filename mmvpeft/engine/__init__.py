from .hooks import *  # noqa: F401,F403
from .optim_wrapper import BF16AutocastOptimWrapper  # noqa: F401
from .loops import LongVideoTestLoop, LongVideoValLoop  # noqa: F401
