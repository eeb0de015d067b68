"""Helpers shared by the moment-retrieval and highlight-detection metrics (numpy only)."""
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np


def as_float_array(value: Any) -> np.ndarray:
    """Convert a list, numpy array or (possibly CUDA) torch tensor to a float64 array.

    Duck-typed on ``.detach()`` so that this module does not import torch.
    """
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def index_by_qid(records: Sequence[dict], what: str) -> Dict[Any, dict]:
    out: Dict[Any, dict] = {}
    for r in records:
        if 'qid' not in r:
            raise ValueError(f'a {what} record has no "qid": {sorted(r)}')
        if r['qid'] in out:
            raise ValueError(f'qid={r["qid"]!r} appears twice in the {what}s')
        out[r['qid']] = r
    return out


def match_qids(preds: Sequence[dict], gts: Sequence[dict]) -> List[Tuple[dict, dict]]:
    """Pair predictions with GT by qid; both sides must cover the same qids (moment_detr's
    default ``match_number=True``). Returned in GT order."""
    pred_by_qid = index_by_qid(preds, 'prediction')
    gt_by_qid = index_by_qid(gts, 'ground-truth')
    orphan = [q for q in pred_by_qid if q not in gt_by_qid]
    if orphan:
        raise ValueError(f'prediction qid={orphan[0]!r} has no ground truth '
                         f'({len(orphan)} such qids)')
    missing = [q for q in gt_by_qid if q not in pred_by_qid]
    if missing:
        raise ValueError(f'ground-truth qid={missing[0]!r} has no prediction '
                         f'({len(missing)} such qids)')
    if not gt_by_qid:
        raise ValueError('no queries to evaluate')
    return [(pred_by_qid[q], g) for q, g in gt_by_qid.items()]
