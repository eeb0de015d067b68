"""Evaluate a moment_detr / QVHighlights submission file: the standalone evaluator.

``tools/eval_moments.py`` is a thin script over :func:`eval_submission`. The metrics are the
functions the in-training metrics call (:func:`~.moment_metrics.eval_moment_retrieval`,
:func:`~.highlight_metrics.highlight_metrics`, :func:`~.highlight_metrics.
eval_domain_highlight`): one implementation, two entry points.

Output, with moment_detr's metric names::

    {"brief": {"MR-full-R1@0.3": ..., "MR-full-R1@0.5": ..., "MR-full-R1@0.7": ...,
               "MR-full-mIoU": ..., "MR-full-mAP": ..., "MR-full-mAP@0.5": ...,
               "MR-full-mAP@0.75": ..., "MR-short-mAP": ..., "MR-middle-mAP": ...,
               "MR-long-mAP": ..., "HL-min-Fair-mAP": ..., "HL-min-Fair-Hit1": ..., ...},
     "full": {"MR-full": {"MR-mAP": {"0.5": ..., ..., "0.95": ..., "average": ...},
                          "MR-R1": {"0.3": ..., "0.5": ..., "0.7": ...}, "mIoU": ...},
              "MR-short": {...}, "MR-middle": {...}, "MR-long": {...},
              "HL-min-Fair": {"HL-mAP": ..., "HL-Hit1": ...}, ...}}

For YouTube Highlights / TVSum ground truth (``label`` and ``domain`` fields) the HD part is
``HL-mAP`` and ``HL-{domain}-mAP`` instead. All figures are percentages, unrounded.
"""
import math
import warnings
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from mmvpeft.utils.fileio import iter_jsonl

from ._common import match_qids
from .highlight_metrics import (DOMAIN_PROTOCOLS, SALIENCY_LEVELS, check_saliency,
                                eval_domain_highlight, highlight_metrics, saliency_matrix)
from .moment_metrics import (LENGTH_BUCKETS, MAP_IOU_THRESHOLDS, _windows_array,
                             filter_by_length, moment_retrieval_map, r1_and_miou)

R1_THRESHOLDS = (0.3, 0.5, 0.7)


class SubmissionError(ValueError):
    """A malformed submission or ground-truth file; the message names the file, line, qid."""


def load_jsonl(path: str, what: str = 'file') -> List[dict]:
    """Read a JSON-lines file; errors name the file and line.

    Args:
        path: the ``.jsonl`` file.
        what: what the file is, for error messages (``'submission'``, ``'ground truth'``).

    Returns:
        One dict per non-empty line.
    """
    records = []
    try:
        open(path, encoding='utf-8').close()
    except OSError as e:
        raise FileNotFoundError(f'{what} file not readable: {path} ({e})') from e
    for lineno, record in iter_jsonl(path, SubmissionError):
        if not isinstance(record, dict) or 'qid' not in record:
            raise SubmissionError(f'{path}:{lineno}: each line must be a JSON object with '
                                  f'a "qid" ({what})')
        records.append(record)
    if not records:
        raise SubmissionError(f'{path}: empty {what} file')
    return records


def count_outside(windows: np.ndarray, duration: float, tol: float = 1e-2) -> int:
    """How many ``[start, end, ...]`` rows pass ``[0, duration]`` by more than ``tol`` s.

    The official QVHighlights evaluator scores such windows by plain tIoU (no clipping, no
    error): the part outside the video only enlarges the union. We do the same and only
    count them, for one warning per evaluation.
    """
    if not len(windows):
        return 0
    return int(((windows[:, 0] < -tol) | (windows[:, 1] > duration + tol)).sum())


def warn_outside(num_outside: int, num_windows: int, num_queries: int) -> None:
    """The one warning of an evaluation whose predictions pass the videos' ends."""
    if num_outside:
        warnings.warn(f'{num_outside} of {num_windows} predicted windows ({num_queries} '
                      'queries) lie partly outside [0, duration]; scored by plain tIoU as '
                      'the official QVHighlights evaluator does', stacklevel=3)


def _mr_block(pred_windows, gt_windows, max_windows) -> Dict[str, Any]:
    r1, miou = r1_and_miou(pred_windows, gt_windows, R1_THRESHOLDS)
    ap = moment_retrieval_map(pred_windows, gt_windows, MAP_IOU_THRESHOLDS, max_windows)
    mAP = {f'{t:g}': 100.0 * float(v) for t, v in zip(MAP_IOU_THRESHOLDS, ap)}
    mAP['average'] = 100.0 * float(ap.mean())
    return {'MR-mAP': mAP, 'MR-R1': {f'{t:g}': 100.0 * float(v) for t, v in
                                     zip(R1_THRESHOLDS, r1)},
            'mIoU': 100.0 * miou, 'num_queries': len(gt_windows)}


def detect_protocol(gts: Sequence[dict]) -> Optional[str]:
    """The HD protocol the ground truth supports: ``'qvhighlights'`` (``saliency_scores``),
    ``'youtube'`` / ``'tvsum'`` (``label`` with 1 / several annotator columns), or None."""
    first = gts[0]
    if first.get('saliency_scores') is not None:
        return 'qvhighlights'
    if first.get('label') is not None:
        width = np.asarray(first['label'], dtype=np.float64)
        return 'youtube' if width.ndim == 1 or width.shape[1] == 1 else 'tvsum'
    return None


def eval_submission(preds: Sequence[dict], gts: Sequence[dict],
                    hd_protocol: str = 'auto', clip_length: float = 2.0,
                    max_windows: int = 10, duration_tol: float = 1e-2) -> Dict[str, dict]:
    """The moment_detr / QVHighlights metrics of a submission, in percent.

    MR is evaluated when the ground truth has ``relevant_windows``; HD when the predictions
    carry ``pred_saliency_scores`` and the ground truth has saliency (QVHighlights) or clip
    labels (YouTube Highlights, TVSum).

    Args:
        preds: ``{'qid', 'pred_relevant_windows': [[s, e, score], ...],
            'pred_saliency_scores'?: [float]}`` records (a :class:`MomentSubmissionDumper`
            file).
        gts: annotation records (``qid``, ``duration``, ``relevant_windows``, and
            ``relevant_clip_ids`` + ``saliency_scores``, or ``label`` + ``domain``).
        hd_protocol: ``'auto'`` (from the GT fields, :func:`detect_protocol`),
            ``'qvhighlights'``, ``'youtube'``, ``'tvsum'`` or ``'none'``.
        clip_length: seconds per saliency clip (QVHighlights: 2).
        max_windows: predictions per query that the MR mAP uses.
        duration_tol: seconds a predicted window may pass ``[0, duration]`` by before it is
            counted in the warning. Windows outside the video are scored by plain tIoU,
            as the official QVHighlights evaluator scores them (moment_detr, lighthouse and
            most DETR models predict some); one warning counts them.

    Returns:
        ``{'brief': {name: value}, 'full': {group: {...}}}`` (see the module docstring).

    Raises:
        SubmissionError: naming the qid, for qids on one side only, duplicated qids, NaN or
            inf scores, malformed windows (wrong shape, end < start), or no metric to
            compute. A submission without ``pred_saliency_scores`` gets its MR metrics only,
            as with the official evaluator.
    """
    try:
        pairs = match_qids(preds, gts)
    except ValueError as e:
        raise SubmissionError(str(e)) from e
    brief: Dict[str, float] = {}
    full: Dict[str, Any] = {}
    has_windows = any(g.get('relevant_windows') for _, g in pairs)
    if has_windows:
        pred_windows, gt_windows = [], []
        num_outside, queries_outside = 0, 0
        for pred, gt in pairs:
            qid = gt['qid']
            if pred.get('pred_relevant_windows') is None:
                raise SubmissionError(f'qid={qid!r}: prediction has no "pred_relevant_windows"')
            if not gt.get('relevant_windows'):
                raise SubmissionError(f'qid={qid!r}: ground truth has no "relevant_windows" '
                                      '(an unlabelled split cannot be evaluated)')
            try:
                p = _windows_array(pred['pred_relevant_windows'], qid, 'pred_relevant_windows', 3)
                g = _windows_array(gt['relevant_windows'], qid, 'relevant_windows', 2)
            except ValueError as e:
                raise SubmissionError(str(e)) from e
            if gt.get('duration') is not None:
                n = count_outside(p, float(gt['duration']), duration_tol)
                num_outside += n
                queries_outside += bool(n)
            pred_windows.append(p)
            gt_windows.append(g)
        warn_outside(num_outside, sum(len(p) for p in pred_windows),
                     queries_outside)
        full['MR-full'] = _mr_block(pred_windows, gt_windows, max_windows)
        for name, length_range in LENGTH_BUCKETS.items():
            keep, kept_gt = filter_by_length(gt_windows, length_range)
            if keep:  # an empty bucket is left out (moment_detr crashes on it)
                full[f'MR-{name}'] = _mr_block([pred_windows[q] for q in keep], kept_gt,
                                               max_windows)
        mr = full['MR-full']
        for t in R1_THRESHOLDS:
            brief[f'MR-full-R1@{t:g}'] = mr['MR-R1'][f'{t:g}']
        brief['MR-full-mIoU'] = mr['mIoU']
        brief['MR-full-mAP'] = mr['MR-mAP']['average']
        brief['MR-full-mAP@0.5'] = mr['MR-mAP']['0.5']
        brief['MR-full-mAP@0.75'] = mr['MR-mAP']['0.75']
        for name in LENGTH_BUCKETS:
            if f'MR-{name}' in full:
                brief[f'MR-{name}-mAP'] = full[f'MR-{name}']['MR-mAP']['average']

    protocol = detect_protocol(gts) if hd_protocol == 'auto' else hd_protocol
    if protocol not in (None, 'none', 'qvhighlights') + DOMAIN_PROTOCOLS:
        raise SubmissionError(f'unknown hd_protocol {hd_protocol!r}')
    has_saliency = any(p.get('pred_saliency_scores') is not None for p, _ in pairs)
    if protocol not in (None, 'none') and has_saliency:
        try:
            if protocol == 'qvhighlights':
                scores, mats = [], []
                for pred, gt in pairs:
                    qid = gt['qid']
                    for key in ('duration', 'relevant_clip_ids', 'saliency_scores'):
                        if gt.get(key) is None:
                            raise ValueError(f'qid={qid!r}: ground truth has no "{key}"')
                    scores.append(check_saliency(pred, qid))
                    mats.append(saliency_matrix(gt['duration'], gt['relevant_clip_ids'],
                                                gt['saliency_scores'], clip_length, qid))
                hl = highlight_metrics(scores, mats, SALIENCY_LEVELS)
                for name in SALIENCY_LEVELS:
                    full[f'HL-min-{name}'] = {'HL-mAP': hl[f'HL-min-{name}-mAP'],
                                              'HL-Hit1': hl[f'HL-min-{name}-Hit1']}
                brief.update(hl)
            else:
                hl = eval_domain_highlight([p for p, _ in pairs], [g for _, g in pairs],
                                           protocol)
                full[f'HL-{protocol}'] = hl
                brief['HL-mAP'] = hl['HL-mAP']
        except ValueError as e:
            raise SubmissionError(str(e)) from e
    if not brief:
        raise SubmissionError('nothing to evaluate: the ground truth has no relevant_windows '
                              'and no saliency / clip labels matched by pred_saliency_scores')
    for key, value in brief.items():
        if not math.isfinite(value):
            raise SubmissionError(f'metric {key} is not finite ({value})')
    return dict(brief=brief, full=full)
