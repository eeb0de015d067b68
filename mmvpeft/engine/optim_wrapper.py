"""bfloat16 autocast for training on any device, CPU included.

MMEngine's ``AmpOptimWrapper`` refuses to start without a GPU (it asserts CUDA / NPU / MLU),
although ``torch.autocast`` runs bfloat16 on a CPU. :class:`BF16AutocastOptimWrapper` is the
plain ``OptimWrapper`` (gradient accumulation, clipping, the same state dict) with the
forward and loss under ``torch.autocast(dtype=torch.bfloat16)`` on the model's device.
bfloat16 has float32's exponent range, so no loss scaling is needed: gradients and the
optimizer stay in float32 (the weights never change dtype).
"""
import contextlib

import torch
from mmengine.optim import OptimWrapper

from mmvpeft.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class BF16AutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose :meth:`optim_context` runs bfloat16 autocast.

    ``tools/train.py --amp`` selects it on a machine without CUDA (with CUDA, ``--amp``
    selects MMEngine's ``AmpOptimWrapper``). Takes ``OptimWrapper``'s arguments.

    Attributes:
        device_type (str | None): the autocast device of the latest step ('cpu', 'cuda'),
            taken from the model's first parameter.
    """
    device_type = None

    @contextlib.contextmanager
    def optim_context(self, model: torch.nn.Module):
        param = next(model.parameters(), None)
        self.device_type = param.device.type if param is not None else 'cpu'
        with super().optim_context(model), torch.autocast(device_type=self.device_type,
                                                          dtype=torch.bfloat16):
            yield
