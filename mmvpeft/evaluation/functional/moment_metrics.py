"""Temporal-grounding metrics (numpy only), defined as moment_detr's standalone evaluator does.

Moment retrieval (MR): R1@m, mIoU, and the ActivityNet-style detection mAP averaged over
tIoU thresholds 0.50:0.05:0.95, overall and per GT-length bucket. Highlight detection (HD)
is in :mod:`.highlight_metrics` (its names stay importable from here); the standalone
evaluator's entry point, ``eval_submission``, is in :mod:`.submission`.

Low-level functions return fractions in ``[0, 1]``; ``eval_moment_retrieval`` and
``eval_highlight`` report percentages (0-100), as moment_detr does, but do not round them to
two decimals (moment_detr rounds for display only; round the returned values yourself if you
need to compare to its printed numbers).

Input records follow the QVHighlights / moment_detr jsonl format:

* prediction ``{'qid', 'pred_relevant_windows': [[start, end, score], ...]}``
  (and ``'pred_saliency_scores': [float, ...]`` for HD);
* ground truth ``{'qid', 'relevant_windows': [[start, end], ...]}``
  (and ``'duration'``, ``'relevant_clip_ids'``, ``'saliency_scores'`` for HD).
"""
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ._common import as_float_array, match_qids
# Highlight detection lives in highlight_metrics.py; these names stay importable from here.
from .highlight_metrics import (SALIENCY_LEVELS, eval_highlight,  # noqa: F401
                                highlight_average_precision, highlight_metrics,
                                saliency_matrix)

#: tIoU thresholds of the MR mAP: 0.5, 0.55, ..., 0.95, rounded to 2 decimals as moment_detr
#: does. It matters on the boundary: ``np.linspace`` gives 0.8999999999999999 for 0.9, which
#: would accept e.g. a tIoU of 1.26 / 1.4 == 0.8999999999999999 that moment_detr rejects.
MAP_IOU_THRESHOLDS: Tuple[float, ...] = tuple(
    round(float(t), 2) for t in np.linspace(0.5, 0.95, 10))

#: moment_detr's GT-length buckets in seconds; a window of length ``l`` is in a bucket
#: ``(lo, hi)`` when ``lo < l <= hi`` (so a zero-length window is in none of them).
LENGTH_BUCKETS: Dict[str, Tuple[float, float]] = {
    'short': (0.0, 10.0),
    'middle': (10.0, 30.0),
    'long': (30.0, 150.0),
}

def _windows_array(value: Any, qid: Any, field: str, ncols: int) -> np.ndarray:
    """Validate ``value`` as an ``(N, ncols)`` array of ``[start, end(, score)]`` rows."""
    try:
        arr = as_float_array(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f'qid={qid!r}: "{field}" is not numeric: {e}') from e
    if arr.size == 0:
        return arr.reshape(0, ncols)
    if arr.ndim != 2 or arr.shape[1] != ncols:
        want = '[start, end, score]' if ncols == 3 else '[start, end]'
        raise ValueError(f'qid={qid!r}: "{field}" must be a list of {want} rows, '
                         f'got shape {arr.shape}')
    if not np.isfinite(arr).all():
        raise ValueError(f'qid={qid!r}: "{field}" contains NaN or inf')
    bad = np.flatnonzero(arr[:, 1] < arr[:, 0])
    if bad.size:
        raise ValueError(f'qid={qid!r}: "{field}" has a window with end < start: '
                         f'{arr[bad[0], :2].tolist()}')
    return arr


def temporal_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Temporal IoU between every pair of windows.

    Args:
        pred: ``(N, 2)`` (or ``(N, >=2)``; extra columns such as a score are ignored)
            ``[start, end]`` windows.
        gt: ``(M, 2)`` ``[start, end]`` windows.

    Returns:
        ``(N, M)`` tIoU. A pair whose union is empty (two zero-length windows at the same
        point) gets 0 rather than NaN.
    """
    pred = np.asarray(pred, dtype=np.float64)[:, :2]
    gt = np.asarray(gt, dtype=np.float64)[:, :2]
    inter = np.clip(
        np.minimum(pred[:, None, 1], gt[None, :, 1]) - np.maximum(pred[:, None, 0], gt[None, :, 0]),
        0, None)
    union = (pred[:, 1] - pred[:, 0])[:, None] + (gt[:, 1] - gt[:, 0])[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def sort_by_score(windows: np.ndarray) -> np.ndarray:
    """Sort ``(N, 3)`` ``[start, end, score]`` rows by descending score; ties keep input order."""
    windows = np.asarray(windows, dtype=np.float64)
    return windows[np.argsort(-windows[:, 2], kind='stable')]


def r1_and_miou(pred_windows: Sequence[np.ndarray],
                gt_windows: Sequence[np.ndarray],
                iou_thresholds: Iterable[float] = (0.3, 0.5, 0.7)) -> Tuple[np.ndarray, float]:
    """Recall@1 at each tIoU threshold and the mean top-1 tIoU.

    The top-1 window of a query is its highest-score prediction (first one on ties); its
    tIoU is the max over that query's GT windows. A query with no prediction scores 0.

    Args:
        pred_windows: Q arrays of shape ``(N_q, 3)``, ``[start, end, score]``.
        gt_windows: Q arrays of shape ``(M_q, 2)`` with ``M_q >= 1``.
        iou_thresholds: T thresholds; a top-1 window hits when ``tIoU >= threshold``.

    Returns:
        ``(T,)`` R1 fractions and the mIoU fraction.
    """
    if len(pred_windows) != len(gt_windows):
        raise ValueError(f'{len(pred_windows)} prediction lists vs {len(gt_windows)} GT lists')
    thr = np.asarray(list(iou_thresholds), dtype=np.float64)
    top1_iou = np.zeros(len(pred_windows))
    for q, (pred, gt) in enumerate(zip(pred_windows, gt_windows)):
        if len(pred):
            top1 = sort_by_score(pred)[:1]
            top1_iou[q] = temporal_iou(top1, gt).max()
    if not len(top1_iou):
        raise ValueError('no queries to evaluate')
    return (top1_iou[:, None] >= thr[None, :]).mean(0), float(top1_iou.mean())


def interpolated_precision_recall(precision: np.ndarray, recall: np.ndarray) -> float:
    """Area under the interpolated precision-recall curve (VOC 2011 / ActivityNet style).

    The curve is padded with ``(recall=0, precision=0)`` in front and ``(recall=1,
    precision=0)`` at the end; each precision is replaced by the max precision at any later
    (higher-recall) point, and the area is summed over the points where recall changes.

    Args:
        precision: ``(K,)`` precision after each ranked prediction.
        recall: ``(K,)`` non-decreasing recall after each ranked prediction.

    Returns:
        The average precision in ``[0, 1]``.
    """
    mprec = np.concatenate([[0.0], np.asarray(precision, dtype=np.float64), [0.0]])
    mrec = np.concatenate([[0.0], np.asarray(recall, dtype=np.float64), [1.0]])
    mprec = np.maximum.accumulate(mprec[::-1])[::-1]
    idx = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def average_precision_detection(pred_windows: np.ndarray,
                                gt_windows: np.ndarray,
                                iou_thresholds: Iterable[float] = MAP_IOU_THRESHOLDS
                                ) -> np.ndarray:
    """ActivityNet detection AP of one query's predictions, at several tIoU thresholds.

    Predictions are visited by descending score (stable, so ties keep input order). Each
    one is a true positive when some not-yet-matched GT window has ``tIoU >= threshold``;
    it then claims the one with the highest tIoU. On a tIoU tie between GT windows, the one
    with the larger index is claimed: moment_detr walks ``argsort()[::-1]``, which for the
    few GT windows of a query is the reverse of a stable sort.

    Args:
        pred_windows: ``(N, 3)`` ``[start, end, score]``, in any order.
        gt_windows: ``(M, 2)`` ``[start, end]``, ``M >= 1``.
        iou_thresholds: T tIoU thresholds.

    Returns:
        ``(T,)`` AP fractions; all zeros when there is no prediction.
    """
    thr = np.asarray(list(iou_thresholds), dtype=np.float64)
    num_gt = len(gt_windows)
    if num_gt == 0:
        raise ValueError('AP is undefined without GT windows')
    if len(pred_windows) == 0:
        return np.zeros(len(thr))
    pred = sort_by_score(pred_windows)
    iou = temporal_iou(pred, gt_windows)  # (N, M)
    gt_order = np.argsort(iou, axis=1, kind='stable')[:, ::-1]  # (N, M), best GT first

    locked = np.zeros((len(thr), num_gt), dtype=bool)  # GT already claimed, per threshold
    tp = np.zeros((len(thr), len(pred)))
    for i in range(len(pred)):
        order = gt_order[i]
        # Walking GTs by descending tIoU and stopping at the first one below the threshold
        # is the same as taking the first unlocked GT (in that order) that passes it.
        free = ~locked[:, order] & (iou[i, order][None, :] >= thr[:, None])  # (T, M)
        hit = free.any(1)
        first = order[free.argmax(1)]
        locked[np.flatnonzero(hit), first[hit]] = True
        tp[hit, i] = 1.0

    tp_cum = np.cumsum(tp, axis=1)
    precision = tp_cum / np.arange(1, len(pred) + 1)[None, :]  # every prediction is TP or FP
    recall = tp_cum / num_gt
    return np.array([interpolated_precision_recall(p, r) for p, r in zip(precision, recall)])


def moment_retrieval_map(pred_windows: Sequence[np.ndarray],
                         gt_windows: Sequence[np.ndarray],
                         iou_thresholds: Iterable[float] = MAP_IOU_THRESHOLDS,
                         max_windows: Optional[int] = 10) -> np.ndarray:
    """Mean over queries of the per-query detection AP.

    Args:
        pred_windows: Q arrays ``(N_q, 3)``; only the ``max_windows`` highest-score rows of
            each are used (``None``: all).
        gt_windows: Q arrays ``(M_q, 2)``, ``M_q >= 1``.
        iou_thresholds: T tIoU thresholds.
        max_windows: predictions kept per query.

    Returns:
        ``(T,)`` mAP fractions.
    """
    if len(pred_windows) != len(gt_windows):
        raise ValueError(f'{len(pred_windows)} prediction lists vs {len(gt_windows)} GT lists')
    if not len(gt_windows):
        raise ValueError('no queries to evaluate')
    thr = list(iou_thresholds)
    aps = np.stack([
        average_precision_detection(sort_by_score(p)[:max_windows], g, thr)
        for p, g in zip(pred_windows, gt_windows)
    ])  # (Q, T)
    return aps.mean(0)


def filter_by_length(gt_windows: Sequence[np.ndarray],
                     length_range: Tuple[float, float]) -> Tuple[List[int], List[np.ndarray]]:
    """Keep the GT windows whose length ``l`` satisfies ``lo < l <= hi``.

    Mirrors moment_detr's ``get_data_by_range``: a query keeps only its in-range GT windows
    and is dropped when none is left; its predictions are left untouched.

    Args:
        gt_windows: Q arrays ``(M_q, 2)``.
        length_range: ``(lo, hi)`` in seconds.

    Returns:
        Indices of the kept queries and their filtered ``(M'_q, 2)`` GT arrays.
    """
    lo, hi = length_range
    keep, kept_gt = [], []
    for q, gt in enumerate(gt_windows):
        length = gt[:, 1] - gt[:, 0]
        sel = gt[(length > lo) & (length <= hi)]
        if len(sel):
            keep.append(q)
            kept_gt.append(sel)
    return keep, kept_gt


def _key(prefix: str, t: float) -> str:
    return f'{prefix}@{t:g}'


def eval_moment_retrieval(preds: Sequence[dict],
                          gts: Sequence[dict],
                          iou_thresholds: Iterable[float] = (0.3, 0.5, 0.7),
                          map_iou_thresholds: Iterable[float] = MAP_IOU_THRESHOLDS,
                          max_windows: Optional[int] = 10,
                          length_buckets: Optional[Dict[str, Tuple[float, float]]] = None
                          ) -> Dict[str, float]:
    """Moment-retrieval metrics of a prediction set, in percent.

    Args:
        preds: ``{'qid', 'pred_relevant_windows': [[s, e, score], ...]}`` records.
        gts: ``{'qid', 'relevant_windows': [[s, e], ...]}`` records; every query needs at
            least one window, and the two lists must hold the same qids.
        iou_thresholds: thresholds of the ``R1@m`` keys.
        map_iou_thresholds: thresholds the ``mAP`` keys average over.
        max_windows: predictions per query used by mAP (highest scores first).
        length_buckets: ``{name: (lo, hi)}`` GT-length buckets, defaults to
            :data:`LENGTH_BUCKETS`.

    Returns:
        ``R1@{m}`` for each ``m`` in ``iou_thresholds``; ``mIoU``; ``mAP`` (mean over
        ``map_iou_thresholds``); ``mAP@0.5`` and ``mAP@0.75`` when those thresholds are in
        ``map_iou_thresholds``; ``mAP_{name}`` for each bucket holding at least one query
        (an empty bucket is left out: moment_detr's evaluator crashes on it, and a 0 would
        read as a real score).

    Raises:
        ValueError: naming the qid, for a malformed window (wrong shape, non-finite,
            end < start), a GT query without windows, a duplicated qid, or qids present on
            one side only.
    """
    buckets = LENGTH_BUCKETS if length_buckets is None else length_buckets
    iou_thresholds = [float(t) for t in iou_thresholds]
    map_thr = [float(t) for t in map_iou_thresholds]
    if not map_thr:
        raise ValueError('map_iou_thresholds is empty')

    pred_windows, gt_windows = [], []
    for pred, gt in match_qids(preds, gts):
        qid = gt['qid']
        if 'pred_relevant_windows' not in pred:
            raise ValueError(f'qid={qid!r}: prediction has no "pred_relevant_windows"')
        if 'relevant_windows' not in gt:
            raise ValueError(f'qid={qid!r}: ground truth has no "relevant_windows"')
        g = _windows_array(gt['relevant_windows'], qid, 'relevant_windows', 2)
        if not len(g):
            raise ValueError(f'qid={qid!r}: ground truth has no relevant window')
        pred_windows.append(
            _windows_array(pred['pred_relevant_windows'], qid, 'pred_relevant_windows', 3))
        gt_windows.append(g)

    r1, miou = r1_and_miou(pred_windows, gt_windows, iou_thresholds)
    out = {_key('R1', t): 100.0 * float(v) for t, v in zip(iou_thresholds, r1)}
    out['mIoU'] = 100.0 * miou

    ap = moment_retrieval_map(pred_windows, gt_windows, map_thr, max_windows)
    out['mAP'] = 100.0 * float(ap.mean())
    for t in (0.5, 0.75):
        if t in map_thr:
            out[_key('mAP', t)] = 100.0 * float(ap[map_thr.index(t)])

    for name, length_range in buckets.items():
        keep, kept_gt = filter_by_length(gt_windows, length_range)
        if keep:
            bucket_ap = moment_retrieval_map([pred_windows[q] for q in keep], kept_gt, map_thr,
                                             max_windows)
            out[f'mAP_{name}'] = 100.0 * float(bucket_ap.mean())
    return out
