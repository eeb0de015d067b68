"""Low-resource training: a seeded subset of the training items, stratified by video.

READ is evaluated as a low-resource method: train on a fraction (or a fixed number) of the
training items. :class:`LowResourceMixin` adds ``train_subset=dict(fraction=0.1, seed=0)``
(or ``count=500``) to the dataset of every task (grounding and highlight queries, retrieval
and captioning (video, caption) pairs, QA questions); the subset is drawn in MMEngine's
``filter_data`` step, so it composes with ``indices`` and serialisation, and it is written
atomically to ``record`` (a JSON file in the work dir: the stable ids of the items kept, per
video) so a run can be reproduced and audited.
"""
import math
from typing import Dict, List, Optional

import numpy as np

from mmvpeft.utils.fileio import write_json_atomic


def stratified_subset(data_list: List[dict], fraction: Optional[float] = None,
                      count: Optional[int] = None, seed: int = 0,
                      group_key: str = 'vid') -> List[int]:
    """Indices of a seeded subset of ``data_list``, stratified by ``group_key``.

    Each video keeps ``fraction`` of its queries (``count / len(data_list)`` with ``count``):
    ``floor`` of its share, and the remaining queries go to the videos with the largest
    remainders (ties broken by a seeded shuffle), so exactly ``round(fraction * N)`` (or
    ``count``) queries are kept, at least one overall. Which queries a video keeps is seeded.

    Returns:
        list[int]: sorted indices into ``data_list``.
    """
    n = len(data_list)
    if (fraction is None) == (count is None):
        raise ValueError('train_subset needs exactly one of fraction or count, got '
                         f'fraction={fraction!r}, count={count!r}')
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise ValueError(f'train_subset fraction must be in (0, 1], got {fraction!r}')
        target = max(1, int(round(fraction * n)))
    else:
        if not (isinstance(count, int) and 0 < count <= n):
            raise ValueError(f'train_subset count must be an int in 1..{n} (the training '
                             f'items), got {count!r}')
        target = count
    rng = np.random.default_rng(seed)
    groups: Dict[str, List[int]] = {}
    for i, info in enumerate(data_list):
        groups.setdefault(str(info[group_key]), []).append(i)
    names = sorted(groups)
    rng.shuffle(names)  # seeded tie-breaking among equal remainders
    share = {g: len(groups[g]) * target / n for g in names}
    quota = {g: math.floor(share[g]) for g in names}
    left = target - sum(quota.values())
    for g in sorted(names, key=lambda g: -(share[g] - quota[g]))[:left]:
        quota[g] += 1
    keep = []
    for g in sorted(groups):
        members = groups[g]
        keep.extend(rng.permutation(members)[:quota[g]].tolist())
    return sorted(keep)


class LowResourceMixin:
    """Adds ``train_subset`` to a dataset (put it first among the bases).

    Items must carry ``vid`` (the stratum) and a stable id (:meth:`subset_item_id`, by
    default the ``subset_id_key`` field: ``qid``), recorded so a run can be audited.

    Args:
        train_subset (dict, optional): ``fraction`` (0, 1] or ``count`` items, ``seed``
            (default 0), ``record`` (JSON path to write the subset to; ``tools/train.py``
            sets it to ``WORK_DIR/train_subset.json``).
    """
    subset_id_key: str = 'qid'

    def subset_item_id(self, info: dict):
        """The stable id of one data item, written to the subset record."""
        return info[self.subset_id_key]

    def __init__(self, *args, train_subset: Optional[dict] = None, **kwargs):
        if train_subset is not None:
            unknown = set(train_subset) - {'fraction', 'count', 'seed', 'record'}
            if unknown:
                raise ValueError(f'train_subset has unknown keys {sorted(unknown)}; use '
                                 'fraction or count, seed, record')
        self.train_subset = dict(train_subset) if train_subset is not None else None
        super().__init__(*args, **kwargs)

    def filter_data(self) -> List[dict]:
        data_list = super().filter_data()
        if not self.train_subset:
            return data_list
        cfg = self.train_subset
        seed = int(cfg.get('seed', 0))
        keep = stratified_subset(data_list, cfg.get('fraction'), cfg.get('count'), seed)
        subset = [data_list[i] for i in keep]
        if cfg.get('record'):
            ids = [self.subset_item_id(info) for info in subset]
            per_video: Dict[str, List] = {}
            for info, ident in zip(subset, ids):
                per_video.setdefault(str(info['vid']), []).append(ident)
            record = dict(ann_file=getattr(self, 'ann_file', None), fraction=cfg.get('fraction'),
                          count=cfg.get('count'), seed=seed, id_key=self.subset_id_key,
                          num_items=len(data_list), num_kept=len(subset),
                          num_videos=len({str(d['vid']) for d in data_list}),
                          num_videos_kept=len(per_video), ids=ids, per_video=per_video)
            if self.subset_id_key == 'qid':  # the field names of the first (grounding) records
                record.update(num_queries=len(data_list), qids=ids)
            write_json_atomic(cfg['record'], record)
        return subset
