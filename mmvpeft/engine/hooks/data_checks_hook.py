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

    def before_train(self, runner):
        """Returns the warning's text (None when the splits share nothing)."""
        from mmvpeft.datasets.identity import check_split_overlap
        train = getattr(runner.train_dataloader, 'dataset', None)
        # A built validation loop (a dict while unbuilt, None without validation).
        val = getattr(getattr(getattr(runner, '_val_loop', None), 'dataloader', None),
                      'dataset', None)
        if train is None or val is None or val is train:
            return None
        msg = check_split_overlap(train, val, 'val', warn=False)  # into the run's log
        if msg:
            print_log(msg, logger='current', level=30)
        return msg
