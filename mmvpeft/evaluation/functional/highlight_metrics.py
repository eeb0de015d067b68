"""Highlight-detection (HD) metrics (numpy only).

Two protocols:

* **QVHighlights** (moment_detr's ``eval_highlight``): per-query clip saliency from three
  annotators (0-4), binarised at each level of :data:`SALIENCY_LEVELS`; HIT@1 and mAP
  (:func:`eval_highlight`, :func:`highlight_metrics`).
* **Per-domain clip labels** (YouTube Highlights, TVSum; the protocol of UMT / UniVTG /
  lighthouse): each video ranks its clips by predicted score; the AP of that ranking
  (:func:`ranking_average_precision`) is averaged over a domain's videos, then over domains
  (:func:`domain_highlight_metrics`). YouTube Highlights: positives are clips with label > 0,
  the whole ranking counts. TVSum: for each of the 20 annotators, positives are clips scored
  above that annotator's median for the video, and only the top 5 ranked clips count
  ("top-5 mAP"); the AP is averaged over annotators.

Functions return fractions in ``[0, 1]`` unless they say percent.
"""
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ._common import as_float_array, match_qids

#: QVHighlights saliency levels: a clip is positive for an annotator at this level when that
#: annotator scored it >= the given value (scores are 0-4).
SALIENCY_LEVELS: Dict[str, int] = {'Fair': 2, 'Good': 3, 'VeryGood': 4}


def saliency_matrix(duration: float,
                    relevant_clip_ids: Sequence[int],
                    saliency_scores: Any,
                    clip_length: float = 2.0,
                    qid: Any = None) -> np.ndarray:
    """Per-clip annotator scores over the whole video; clips outside the moment score 0.

    Args:
        duration: video length in seconds; the video has ``int(duration / clip_length)``
            clips (moment_detr's ``mk_gt_scores``).
        relevant_clip_ids: K clip indices.
        saliency_scores: ``(K, A)`` scores (0-4) from A annotators.
        clip_length: seconds per clip.
        qid: used in error messages only.

    Returns:
        ``(num_clips, A)`` float array.
    """
    num_clips = int(float(duration) / clip_length)
    ids = np.asarray(relevant_clip_ids, dtype=np.int64).reshape(-1)
    scores = as_float_array(saliency_scores)
    if scores.ndim != 2 or len(scores) != len(ids) or not len(ids):
        raise ValueError(f'qid={qid!r}: "saliency_scores" must be a non-empty (K, annotators) '
                         f'list matching the {len(ids)} relevant_clip_ids, got shape '
                         f'{scores.shape}')
    if num_clips <= 0 or ids.min() < 0 or ids.max() >= num_clips:
        raise ValueError(f'qid={qid!r}: relevant_clip_ids must lie in [0, {num_clips}) '
                         f'(duration={duration}, clip_length={clip_length}), got '
                         f'[{ids.min()}, {ids.max()}]')
    full = np.zeros((num_clips, scores.shape[1]))
    full[ids] = scores
    return full


def highlight_average_precision(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Interpolated AP of a clip ranking, as moment_detr's ``get_ap`` computes it.

    Clips are ranked by descending score, equal scores forming one rank (a threshold). The
    AP is the plain mean, over the thresholds at which recall increases, of the
    interpolated precision there (the max precision at that or any lower threshold down
    to the one reaching full recall). Each threshold counts once however many positives it
    adds. If every clip is negative the AP is 0; if every clip is positive it is 1.

    Args:
        y_true: ``(K,)`` binary labels.
        y_score: ``(K,)`` scores.

    Returns:
        The AP in ``[0, 1]``.
    """
    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    y_score = np.asarray(y_score, dtype=np.float64).reshape(-1)
    if len(y_true) != len(y_score) or not len(y_true):
        raise ValueError(f'need equal non-empty lengths, got {len(y_true)} and {len(y_score)}')
    if not np.isin(y_true, (0.0, 1.0)).all():
        raise ValueError('y_true must be binary')
    if (y_true == y_true[0]).all():
        return float(y_true[0])
    order = np.argsort(-y_score, kind='stable')
    s, t = y_score[order], y_true[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last clip of each score level
    tps = np.cumsum(t)[last]
    precision = tps / (last + 1)
    full = int(np.argmax(tps == tps[-1]))  # first level reaching full recall
    tps, precision = tps[:full + 1], precision[:full + 1]
    interp = np.maximum.accumulate(precision[::-1])[::-1]
    gains = np.diff(np.r_[0.0, tps]) > 0
    return float(interp[gains].mean())


def eval_highlight(preds: Sequence[dict],
                   gts: Sequence[dict],
                   clip_length: float = 2.0,
                   levels: Optional[Dict[str, int]] = None) -> Dict[str, float]:
    """QVHighlights highlight-detection metrics, in percent (moment_detr ``eval_highlight``).

    For each saliency level, a clip is positive for an annotator when that annotator's
    score is >= the level. HIT@1: the clip with the highest predicted score (first one on
    ties) is a hit for a query when at least one annotator marks it positive (max over
    annotators, as moment_detr does), averaged over queries. mAP:
    :func:`highlight_average_precision` per query and annotator, averaged over both.
    Predicted scores are zero-padded or truncated to the video's clip count for the AP;
    a top clip beyond the video's clips is a miss.

    Args:
        preds: ``{'qid', 'pred_saliency_scores': [float] * num_clips}`` records.
        gts: ``{'qid', 'duration', 'relevant_clip_ids', 'saliency_scores'}`` records.
        clip_length: seconds per clip.
        levels: ``{name: min_score}``, defaults to :data:`SALIENCY_LEVELS`.

    Returns:
        ``HL-min-{name}-mAP`` and ``HL-min-{name}-Hit1`` for each level.
    """
    levels = SALIENCY_LEVELS if levels is None else levels
    pred_scores, gt_mats = [], []
    for pred, gt in match_qids(preds, gts):
        qid = gt['qid']
        for key in ('duration', 'relevant_clip_ids', 'saliency_scores'):
            if key not in gt:
                raise ValueError(f'qid={qid!r}: ground truth has no "{key}"')
        if 'pred_saliency_scores' not in pred:
            raise ValueError(f'qid={qid!r}: prediction has no "pred_saliency_scores"')
        scores = as_float_array(pred['pred_saliency_scores']).reshape(-1)
        if not len(scores) or not np.isfinite(scores).all():
            raise ValueError(f'qid={qid!r}: "pred_saliency_scores" must be non-empty and finite')
        pred_scores.append(scores)
        gt_mats.append(saliency_matrix(gt['duration'], gt['relevant_clip_ids'],
                                       gt['saliency_scores'], clip_length, qid))
    return highlight_metrics(pred_scores, gt_mats, levels)


def highlight_metrics(pred_scores: Sequence[np.ndarray],
                      gt_saliency: Sequence[np.ndarray],
                      levels: Optional[Dict[str, int]] = None) -> Dict[str, float]:
    """HD metrics from already-built arrays; see :func:`eval_highlight`.

    Args:
        pred_scores: Q arrays ``(C'_q,)`` of predicted clip scores.
        gt_saliency: Q arrays ``(C_q, A)`` from :func:`saliency_matrix`.
        levels: ``{name: min_score}``, defaults to :data:`SALIENCY_LEVELS`.

    Returns:
        ``HL-min-{name}-mAP`` and ``HL-min-{name}-Hit1`` in percent.
    """
    levels = SALIENCY_LEVELS if levels is None else levels
    if not len(pred_scores) or len(pred_scores) != len(gt_saliency):
        raise ValueError(f'need equal non-zero query counts, got {len(pred_scores)} '
                         f'and {len(gt_saliency)}')
    out = {}
    for name, min_score in levels.items():
        hits, aps = [], []
        for scores, gt in zip(pred_scores, gt_saliency):
            binary = gt >= min_score  # (C, A)
            top = int(np.argmax(scores))
            hits.append(top < len(binary) and bool(binary[top].any()))
            fitted = np.zeros(len(binary))
            n = min(len(binary), len(scores))
            fitted[:n] = scores[:n]
            aps.extend(highlight_average_precision(binary[:, a], fitted)
                       for a in range(binary.shape[1]))
        out[f'HL-min-{name}-mAP'] = 100.0 * float(np.mean(aps))
        out[f'HL-min-{name}-Hit1'] = 100.0 * float(np.mean(hits))
    return out


# --------------------------------------------------------------------------------------
# Per-domain clip-label protocols (YouTube Highlights, TVSum)
# --------------------------------------------------------------------------------------

#: The two per-domain protocols: which clips are positive, and how much of the ranking counts.
DOMAIN_PROTOCOLS = ('youtube', 'tvsum')


def ranking_average_precision(labels: np.ndarray, scores: np.ndarray,
                              top_k: Optional[int] = None) -> float:
    """AP of a clip ranking, as UMT / UniVTG compute it for YouTube Highlights and TVSum.

    Clips are ranked by descending score (stable: ties keep clip order). Walking the ranking
    (only its first ``top_k`` clips when given), the AP adds the trapezoid
    ``(recall_j - recall_{j-1}) * (precision_{j-1} + precision_j) / 2`` at every step, with
    ``precision_0 = 1`` and ``recall_0 = 0``; recall is relative to the positives *within the
    walked clips*. No positive there: AP 0.

    Args:
        labels: ``(C,)`` binary clip labels.
        scores: ``(C,)`` predicted clip scores.
        top_k: walk only the best ``top_k`` clips (5 for TVSum); None walks all.

    Returns:
        The AP in ``[0, 1]``.
    """
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(labels) != len(scores) or not len(labels):
        raise ValueError(f'need equal non-empty lengths, got {len(labels)} and {len(scores)}')
    ranked = labels[np.argsort(-scores, kind='stable')][:top_k]
    num_pos = ranked.sum()
    if num_pos == 0:
        return 0.0
    hits = np.cumsum(ranked)
    recall = np.r_[0.0, hits / num_pos]
    precision = np.r_[1.0, hits / np.arange(1, len(ranked) + 1)]
    return float(np.sum(np.diff(recall) * (precision[1:] + precision[:-1]) / 2))


def binarize_clip_labels(labels: Any, protocol: str, qid: Any = None) -> np.ndarray:
    """Binary positives per clip and annotator for a per-domain protocol.

    Args:
        labels: ``(C, A)`` clip labels: YouTube Highlights ``(C, 1)`` in {0, 1} (or -1 / 0 /
            1, positives > 0); TVSum ``(C, 20)`` importance scores 1-5.
        protocol: ``'youtube'`` (positive when label > 0) or ``'tvsum'`` (positive when the
            annotator's score is above that annotator's median over the video's clips).
        qid: named in errors.

    Returns:
        ``(C, A)`` float array of 0 / 1.
    """
    arr = as_float_array(labels)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or not arr.size or not np.isfinite(arr).all():
        raise ValueError(f'qid={qid!r}: "label" must be a finite non-empty (clips, annotators) '
                         f'list, got shape {arr.shape}')
    if protocol == 'youtube':
        return (arr > 0).astype(np.float64)
    if protocol == 'tvsum':
        return (arr > np.median(arr, axis=0, keepdims=True)).astype(np.float64)
    raise ValueError(f'unknown HD protocol {protocol!r}; expected one of {DOMAIN_PROTOCOLS}')


def fit_scores(scores: np.ndarray, num_clips: int) -> np.ndarray:
    """Zero-pad or truncate predicted clip scores to the annotated clip count (as
    :func:`highlight_metrics` does for QVHighlights)."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    out = np.zeros(num_clips)
    n = min(num_clips, len(scores))
    out[:n] = scores[:n]
    return out


def domain_highlight_metrics(pred_scores: Sequence[np.ndarray],
                             positives: Sequence[np.ndarray],
                             domains: Sequence[str],
                             top_k: Optional[int] = None) -> Dict[str, float]:
    """Per-domain HD mAP from built arrays, in percent.

    A video's AP is :func:`ranking_average_precision` averaged over its annotators; a
    domain's mAP is the mean over its videos; ``HL-mAP`` is the mean over domains (each
    domain counts once, however many videos it has, as in the per-domain tables of UMT and
    UniVTG, which train and test one model per domain).

    Args:
        pred_scores: Q arrays ``(C'_q,)`` of predicted clip scores (fitted to ``C_q`` with
            :func:`fit_scores`).
        positives: Q arrays ``(C_q, A)`` from :func:`binarize_clip_labels`.
        domains: Q domain names.
        top_k: see :func:`ranking_average_precision`.

    Returns:
        ``HL-{domain}-mAP`` per domain and ``HL-mAP``.
    """
    if not len(pred_scores) or not (len(pred_scores) == len(positives) == len(domains)):
        raise ValueError(f'need equal non-zero counts, got {len(pred_scores)} scores, '
                         f'{len(positives)} labels, {len(domains)} domains')
    per_domain: Dict[str, List[float]] = {}
    for scores, pos, domain in zip(pred_scores, positives, domains):
        fitted = fit_scores(scores, len(pos))
        ap = np.mean([ranking_average_precision(pos[:, a], fitted, top_k)
                      for a in range(pos.shape[1])])
        per_domain.setdefault(str(domain), []).append(float(ap))
    out = {f'HL-{d}-mAP': 100.0 * float(np.mean(v)) for d, v in sorted(per_domain.items())}
    out['HL-mAP'] = float(np.mean([out[f'HL-{d}-mAP'] for d in per_domain]))
    return out


def eval_domain_highlight(preds: Sequence[dict], gts: Sequence[dict], protocol: str,
                          top_k: Optional[int] = None) -> Dict[str, float]:
    """YouTube Highlights / TVSum HD metrics of a prediction set, in percent.

    Args:
        preds: ``{'qid', 'pred_saliency_scores': [float] * num_clips}`` records.
        gts: ``{'qid', 'label': (C, A), 'domain'}`` records (the lighthouse / UniVTG jsonl).
        protocol: ``'youtube'`` or ``'tvsum'``.
        top_k: clips of the ranking that count; None: 5 for TVSum, all for YouTube.

    Returns:
        ``HL-{domain}-mAP`` per domain and ``HL-mAP`` (see :func:`domain_highlight_metrics`).
    """
    if protocol not in DOMAIN_PROTOCOLS:
        raise ValueError(f'unknown HD protocol {protocol!r}; expected one of {DOMAIN_PROTOCOLS}')
    if top_k is None and protocol == 'tvsum':
        top_k = 5
    scores, positives, domains = [], [], []
    for pred, gt in match_qids(preds, gts):
        qid = gt['qid']
        for key in ('label', 'domain'):
            if gt.get(key) is None:
                raise ValueError(f'qid={qid!r}: ground truth has no "{key}"')
        scores.append(check_saliency(pred, qid))
        positives.append(binarize_clip_labels(gt['label'], protocol, qid))
        domains.append(gt['domain'])
    return domain_highlight_metrics(scores, positives, domains, top_k)


def check_saliency(pred: dict, qid: Any) -> np.ndarray:
    """``pred['pred_saliency_scores']`` as a finite non-empty ``(C,)`` array; errors name qid."""
    if pred.get('pred_saliency_scores') is None:
        raise ValueError(f'qid={qid!r}: prediction has no "pred_saliency_scores"')
    try:
        scores = as_float_array(pred['pred_saliency_scores']).reshape(-1)
    except (TypeError, ValueError) as e:
        raise ValueError(f'qid={qid!r}: "pred_saliency_scores" is not numeric: {e}') from e
    if not len(scores) or not np.isfinite(scores).all():
        raise ValueError(f'qid={qid!r}: "pred_saliency_scores" must be non-empty and finite '
                         '(found NaN/inf or an empty list)')
    return scores


def chance_highlight(fn, num_clips: Sequence[int], draws: int = 20, seed: int = 0
                     ) -> Dict[str, float]:
    """Mean of ``fn(random_scores)`` over seeded draws of uniform clip scores: the chance
    level of an HD metric (``fn`` maps Q score arrays to a metric dict)."""
    rng = np.random.default_rng(seed)
    total: Dict[str, float] = {}
    for _ in range(draws):
        for k, v in fn([rng.uniform(size=n) for n in num_clips]).items():
            total[k] = total.get(k, 0.0) + v / draws
    return total


def resample_to_label_clips(scores: Any, clip_len: float, label_windows: Any) -> np.ndarray:
    """Predicted scores per model row -> one score per annotated clip.

    The model scores rows of ``clip_len`` seconds (row ``i`` covers ``[i, i + 1) *
    clip_len``); YouTube Highlights annotates overlapping 100-frame clips. Each annotated clip
    takes the score of the row holding its centre (the last row past the end).

    Args:
        scores: ``(T,)`` row scores.
        clip_len: seconds per row.
        label_windows: ``(C, 2)`` ``[start, end]`` seconds of the annotated clips.

    Returns:
        ``(C,)`` scores.
    """
    scores = as_float_array(scores).reshape(-1)
    windows = as_float_array(label_windows).reshape(-1, 2)
    rows = np.floor(windows.mean(1) / float(clip_len)).astype(np.int64)
    return scores[np.clip(rows, 0, len(scores) - 1)]
