"""Identity of annotation items: ids compared as the annotation types them, and splits that
share items.

* :class:`IdTypes`: within one annotation file, ``7`` and ``"7"`` are two different ids that
  print the same (and name the same file, e.g. ``qid7.npz``): an :class:`AnnotationError`
  naming both places and the file.
* :func:`split_overlap` / :func:`check_split_overlap`: items of a training set that also
  appear in its validation or test set (same qid, or the same video with the same text): one
  warning with the count and a few examples. Run by :class:`~mmvpeft.engine.hooks.
  DataChecksHook` once both datasets are built.
"""
import warnings
from typing import Dict, Hashable, List, Optional, Tuple

from .base import AnnotationError

# The text fields an item may carry, in the order they are looked up (one per task).
TEXT_KEYS = ('query', 'question', 'captions')


class IdTypes:
    """Refuses two ids of one file that differ in type but print the same (``7``, ``"7"``).

    Exact duplicates are left to the dataset's own duplicate check (same type, same value),
    which already names both places.

    Args:
        ann_file: the annotation file (named in the error).
        field: the id field (``qid``, ``vid``).
    """

    def __init__(self, ann_file: str, field: str = 'qid'):
        self.ann_file, self.field = ann_file, field
        self._first: Dict[str, Tuple[object, str]] = {}

    def check(self, value, where: str) -> None:
        """Record ``value`` found at ``where`` (``file:line`` or ``file[index]``).

        Raises:
            AnnotationError: an id of another type with the same text was seen before.
        """
        key = str(value)
        first = self._first.get(key)
        if first is None:
            self._first[key] = (value, where)
            return
        other, other_where = first
        if type(other) is not type(value):
            raise AnnotationError(
                f'{where}: {self.field} {value!r} ({type(value).__name__}) and {self.field} '
                f'{other!r} ({type(other).__name__}) at {other_where} are two different ids '
                f'that print the same: anything named after the {self.field} (e.g. '
                f'{self.field}{key}.npz) would be shared by both. Give every {self.field} of '
                f'{self.ann_file} one type (all numbers or all strings).')


def _item_keys(info: dict) -> Tuple[Optional[Hashable], List[Tuple[str, str]]]:
    """``(typed qid or None, [(vid, text), ...])`` of one data item."""
    qid = info.get('qid')
    qid = None if qid is None else (type(qid).__name__, qid)
    pairs = []
    vid = info.get('vid')
    if vid is not None:
        for key in TEXT_KEYS:
            text = info.get(key)
            if text is None:
                continue
            texts = text if isinstance(text, (list, tuple)) else [text]
            pairs += [(str(vid), ' '.join(str(t).lower().split())) for t in texts]
            break
    return qid, pairs


def _dataset_keys(dataset) -> Tuple[set, set]:
    qids, pairs = set(), set()
    for i in range(len(dataset)):
        qid, p = _item_keys(dataset.get_data_info(i))
        if qid is not None:
            qids.add(qid)
        pairs.update(p)
    return qids, pairs


def split_overlap(train, other) -> Dict[str, list]:
    """What two built datasets share.

    Args:
        train: the training dataset (MMEngine ``BaseDataset``: ``len`` and
            ``get_data_info``).
        other: the validation or test dataset.

    Returns:
        dict: ``qids`` (qids in both, compared with their types: ``7`` and ``"7"`` differ)
        and ``pairs`` (``(vid, text)`` in both, text lower-cased with spaces collapsed), each
        a sorted list.
    """
    tq, tp = _dataset_keys(train)
    oq, op = _dataset_keys(other)
    return dict(qids=sorted((q for q in tq & oq), key=repr), pairs=sorted(tp & op))


def _where(dataset) -> str:
    return getattr(dataset, 'ann_file', None) or type(dataset).__name__


def check_split_overlap(train, other, split: str = 'val', examples: int = 3,
                        warn: bool = True) -> Optional[str]:
    """Warn (once, with the count and a few examples) when ``other`` shares items with
    ``train``: a score on shared items measures memory, not generalisation.

    Args:
        train: the training dataset.
        other: the validation or test dataset.
        split: its name in the message.
        examples: how many shared items the message shows.
        warn: issue a ``UserWarning`` (else only return the text, for a logger).

    Returns:
        str or None: the warning's text, None when the splits share nothing.
    """
    found = split_overlap(train, other)
    parts = []
    if found['qids']:
        q = found['qids']
        parts.append(f'{len(q)} qid(s) (e.g. {", ".join(repr(v) for _, v in q[:examples])})')
    if found['pairs']:
        p = found['pairs']
        parts.append(f'{len(p)} (vid, text) pair(s) (e.g. '
                     f'{"; ".join(f"{v!r}: {t!r}" for v, t in p[:examples])})')
    if not parts:
        return None
    msg = (f'the {split} split shares {" and ".join(parts)} with the training split '
           f'(train: {_where(train)}, {split}: {_where(other)}); {split} figures on shared '
           'items overstate the model. Check the split files.')
    if warn:
        warnings.warn(msg, stacklevel=2)
    return msg

