"""Skipping undecodable videos in training, never in evaluation."""
from mmengine.logging import print_log

from .transforms.loading import VideoReadError


class SkipCorruptMixin:
    """For a ``BaseDataset``: with ``self.skip_corrupt`` set, a training item whose video
    raises :class:`VideoReadError` is skipped with a warning naming it, and MMEngine's
    ``__getitem__`` draws another index. In test mode it always raises: a missing video
    would silently change the metrics.

    ``ident_key`` names the field printed in the warning (``qid``, ``vid``).
    """
    skip_corrupt: bool = False
    ident_key: str = 'vid'

    def prepare_data(self, idx):
        try:
            return super().prepare_data(idx)
        except VideoReadError as e:
            if not self.skip_corrupt or self.test_mode:
                raise
            ident = self.get_data_info(idx).get(self.ident_key)
            print_log(f'skipping unreadable item {idx} ({self.ident_key}={ident}): {e}',
                      logger='current', level=30)
            return None  # BaseDataset.__getitem__ draws another index
