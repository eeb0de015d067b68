"""Checks that need two built datasets, run once when training starts."""
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmvpeft.registry import HOOKS


@HOOKS.register_module()
class DataChecksHook(Hook):
    """Before the first training step, compares the training set with the validation set
    (both are built by then): shared qids, or the same video with the same query / question /
    caption, give one warning with the count and a few examples
    (:func:`mmvpeft.datasets.identity.check_split_overlap`). Never changes the run.
    """

    def before_train(self, runner) -> None:
        from mmengine.runner.base_loop import BaseLoop

        from mmvpeft.datasets.identity import check_split_overlap
        train = getattr(runner.train_dataloader, 'dataset', None)
        val_loop = getattr(runner, '_val_loop', None)
        if train is None or not isinstance(val_loop, BaseLoop):
            return
        val = getattr(val_loop.dataloader, 'dataset', None)
        if val is None or val is train:
            return
        msg = check_split_overlap(train, val, 'val', warn=False)  # into the run's log
        if msg:
            print_log(msg, logger='current', level=30)
