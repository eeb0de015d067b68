"""What every task dataset shares (mmaction2's ``BaseActionDataset`` role).

* :class:`AnnotationError`: a malformed annotation; the message names file, line and field.
* :func:`join_root`: ``data_root``-relative paths, the one location knob of a dataset.
* :func:`resolve_item_path`: how a transform resolves a folder through a data item. Datasets
  never rewrite their pipeline: every item carries ``data_root`` (added by
  :class:`DataRootMixin`), and a loader joins its relative folder to it when it runs
  (mmaction2's ``data_prefix`` way).
* :class:`VideoFilesMixin`: annotation-file checks and per-item video paths.
* :class:`SkipCorruptMixin`: skipping undecodable videos in training, never in evaluation.
* :class:`TextLengthMixin`: one warning per dataset when its texts are longer than the
  pipeline's tokenizer keeps.
"""
import os.path as osp
from typing import Dict, Optional

from mmengine.logging import print_log


class AnnotationError(ValueError):
    """An annotation file has a malformed line; the message names file, line and field."""


def join_root(data_root: Optional[str], path: Optional[str]) -> Optional[str]:
    """``data_root/path`` for a relative ``path``; absolute paths, None and an empty
    ``data_root`` pass ``path`` through unchanged."""
    if path is None or not data_root or osp.isabs(path):
        return path
    return osp.join(data_root, path)


def resolve_item_path(results: dict, folder: Optional[str]) -> Optional[str]:
    """``folder`` joined to the data item's ``data_root`` (see :func:`join_root`).

    Args:
        results: a data item; ``results.get('data_root')`` is the dataset's ``data_root``
            (absent when a transform runs outside a dataset, e.g. at inference).
        folder: a folder named in a transform's config, relative to ``data_root``.

    Returns:
        str: the folder to read.
    """
    return join_root(results.get('data_root'), folder)


class DataRootMixin:
    """For a ``BaseDataset``: every data item carries the dataset's ``data_root``, so
    transforms resolve their relative folders through the item (:func:`resolve_item_path`)
    and the dataset never rewrites its pipeline."""

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        info.setdefault('data_root', self.data_root)
        return info


class VideoFilesMixin:
    """Annotation-file checks and per-item video paths.

    Expects ``data_root``, ``video_dir``, ``video_ext`` and ``frame_dir`` attributes (joined
    to ``data_root`` by the dataset).
    """

    def _require_file(self, path: str, what: str) -> str:
        """``path`` if it is a file, else a ``FileNotFoundError`` naming ``what`` and
        ``data_root``."""
        if not path or not osp.isfile(path):
            raise FileNotFoundError(f'{type(self).__name__}: {what} not found: {path!r} '
                                    f'(data_root={self.data_root!r})')
        return path

    def video_paths(self, item: Dict) -> Dict[str, str]:
        """``video_path`` (the item's ``video`` file name, or ``{vid}{video_ext}``, under
        ``video_dir``) and/or ``frame_dir`` (``frame_dir/{vid}``) of one annotation item."""
        paths = {}
        if self.video_dir is not None:
            name = item.get('video') or f'{item["vid"]}{self.video_ext or ""}'
            paths['video_path'] = osp.join(self.video_dir, name)
        if self.frame_dir is not None:
            paths['frame_dir'] = osp.join(self.frame_dir, item['vid'])
        return paths


class SkipCorruptMixin:
    """For a ``BaseDataset``: with ``self.skip_corrupt`` set, a training item whose video
    raises ``VideoReadError`` is skipped with a warning naming it, and MMEngine's
    ``__getitem__`` draws another index. In test mode it always raises: a missing video
    would silently change the metrics.

    ``ident_key`` names the field printed in the warning (``qid``, ``vid``).
    """
    skip_corrupt: bool = False
    ident_key: str = 'vid'

    def prepare_data(self, idx):
        # Imported here: the transforms import this module (resolve_item_path).
        from .transforms import VideoReadError
        try:
            return super().prepare_data(idx)
        except VideoReadError as e:
            if not self.skip_corrupt or self.test_mode:
                raise
            ident = self.get_data_info(idx).get(self.ident_key)
            print_log(f'skipping unreadable item {idx} ({self.ident_key}={ident}): {e}',
                      logger='current', level=30)
            return None  # BaseDataset.__getitem__ draws another index


class TextLengthMixin:
    """For a ``BaseDataset`` (first among the bases, so it sees the items that are used):
    texts the pipeline's tokenizers will cut at their context length give one warning per
    dataset with their count and the longest length in tokens
    (:func:`mmvpeft.datasets.transforms.text.check_text_lengths`)."""

    def filter_data(self):
        from .transforms.text import check_text_lengths
        data_list = super().filter_data()
        check_text_lengths(data_list, getattr(self.pipeline, 'transforms', []),
                           getattr(self, 'ann_file', None) or type(self).__name__)
        return data_list
