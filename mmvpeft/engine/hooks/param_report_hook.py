"""Log the parameter report when training starts."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmvpeft.registry import HOOKS
from mmvpeft.utils.param_report import parameter_report


@HOOKS.register_module()
class ParameterReportHook(Hook):
    """Logs trainable / total parameters per module group before the first iteration.

    The figures also go to the message hub as ``params/trainable`` and ``params/total`` so
    they end up in the run's scalar logs.
    """

    def __init__(self, depth: int = 2):
        self.depth = depth

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        rows, table = parameter_report(model, self.depth)
        runner.logger.info('Parameter report (trainable / total):\n' + table)
        _, trainable, total = rows[-1]
        runner.message_hub.update_info('params/trainable', trainable)
        runner.message_hub.update_info('params/total', total)
