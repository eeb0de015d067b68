from .backbones import *  # noqa: F401,F403
from .decoders import *  # noqa: F401,F403
from .encoders import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .peft import *  # noqa: F401,F403
from .tasks import *  # noqa: F401,F403
