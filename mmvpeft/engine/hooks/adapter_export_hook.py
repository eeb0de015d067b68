"""Save the trained parameters as safetensors beside MMEngine's checkpoints."""
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmvpeft.registry import HOOKS
from mmvpeft.utils.adapter_io import save_adapter
from mmvpeft.utils.fingerprint import frozen_fingerprint


@HOOKS.register_module()
class AdapterExportHook(Hook):
    """Write ``{work_dir}/adapter_epoch_{N}.safetensors`` and ``adapter_latest.safetensors``
    whenever MMEngine saves a checkpoint (N: the epoch in the checkpoint's meta), holding the
    trained parameters only, the config that rebuilds the model and the frozen-base
    fingerprint (see :mod:`mmvpeft.utils.adapter_io`). Resume still uses MMEngine's
    ``.pth``; the safetensors file is what you ship and what ``mmvpeft.apis.init_grounder`` or
    ``tools/demo.py`` load.

    Args:
        keep_epochs: also keep one file per saved epoch (else only ``adapter_latest``).
    """

    priority = 'LOW'

    def __init__(self, keep_epochs: bool = True):
        self.keep_epochs = keep_epochs

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # MMEngine calls this from Runner.save_checkpoint (periodic and best checkpoints)
        if not is_main_process():
            return
        epoch = checkpoint.get('meta', {}).get('epoch', runner.epoch)
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        # hashed once for both files: it reads every frozen weight
        fingerprint = frozen_fingerprint(model, getattr(model, 'base_sources', None))
        latest = save_adapter(model, osp.join(runner.work_dir, 'adapter_latest.safetensors'),
                              runner.cfg, fingerprint)
        if self.keep_epochs:
            save_adapter(model, osp.join(runner.work_dir,
                                         f'adapter_epoch_{epoch}.safetensors'),
                         runner.cfg, fingerprint)
        runner.logger.info(f'saved the trained parameters to {latest}')
