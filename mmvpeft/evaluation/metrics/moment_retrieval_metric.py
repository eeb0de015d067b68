"""Moment-retrieval metric (R1@m, mIoU, mAP and its length buckets) for MMEngine evaluators."""
from typing import Any, Dict, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from mmvpeft.evaluation.functional.moment_metrics import (MAP_IOU_THRESHOLDS,
                                                          as_float_array,
                                                          eval_moment_retrieval,
                                                          r1_and_miou)
from mmvpeft.registry import METRICS


@METRICS.register_module()
class MomentRetrievalMetric(BaseMetric):
    """R1@m, mIoU and moment_detr's MR mAP, all in percent.

    Definitions are those of :func:`~mmvpeft.evaluation.functional.moment_metrics.
    eval_moment_retrieval`: R1 and mIoU use the highest-score prediction of each query;
    mAP averages the per-query ActivityNet detection AP of its ``max_windows``
    highest-score predictions over tIoU 0.50:0.05:0.95, also per GT-length bucket.

    Each item of ``data_samples`` passed to :meth:`process` is a dict with ``qid``,
    ``gt_windows`` (``(M, 2)`` seconds, ``M >= 1``) and ``pred_relevant_windows``
    (``(N, 3)`` ``[start, end, score]``, any order); lists, arrays and tensors are accepted.

    Args:
        iou_thresholds: tIoU thresholds of the ``R1@m`` keys.
        max_windows: predictions per query used by mAP.
        collect_device: ``'cpu'`` or ``'gpu'``, for gathering results across ranks.
        prefix: prefix of the metric names, e.g. ``'MR'`` gives ``'MR/R1@0.5'``.
        chance_draws: if > 0, also report the chance level: R1 and mIoU of one window per
            query whose two ends are drawn uniformly in ``[0, duration]``, averaged over this
            many seeded draws, as ``chance/R1@m`` and ``chance/mIoU`` (samples then need
            ``duration``). It tells how far above guessing a score is.

    Returned keys: ``R1@0.3``, ``R1@0.5``, ``R1@0.7`` (one per threshold), ``mIoU``,
    ``mAP``, ``mAP@0.5``, ``mAP@0.75``, and ``mAP_short`` / ``mAP_middle`` / ``mAP_long``
    for the buckets that contain at least one query.
    """

    default_prefix: Optional[str] = None

    def __init__(self,
                 iou_thresholds: Sequence[float] = (0.3, 0.5, 0.7),
                 max_windows: int = 10,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 chance_draws: int = 0) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.chance_draws = int(chance_draws)
        self.iou_thresholds = tuple(float(t) for t in iou_thresholds)
        if not self.iou_thresholds or not all(0.0 < t <= 1.0 for t in self.iou_thresholds):
            raise ValueError(f'iou_thresholds must be non-empty and in (0, 1], '
                             f'got {iou_thresholds}')
        if int(max_windows) < 1:
            raise ValueError(f'max_windows must be >= 1, got {max_windows}')
        self.max_windows = int(max_windows)

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep the qid, GT windows and predicted windows of each sample (as float arrays)."""
        for sample in data_samples:
            for key in ('qid', 'gt_windows', 'pred_relevant_windows'):
                if key not in sample:
                    raise KeyError(f'{type(self).__name__} needs "{key}" in each data sample '
                                   f'(qid={sample.get("qid")!r})')
            qid = sample['qid']
            result = dict(qid=qid.item() if hasattr(qid, 'item') else qid,
                          gt_windows=as_float_array(sample['gt_windows']),
                          pred_relevant_windows=as_float_array(sample['pred_relevant_windows']))
            if self.chance_draws:
                if 'duration' not in sample:
                    raise KeyError(f'chance_draws needs "duration" in each data sample '
                                   f'(qid={qid!r})')
                result['duration'] = float(sample['duration'])
            self.results.append(result)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Compute the metrics from the gathered ``results`` (rank 0 only)."""
        preds = [dict(qid=r['qid'], pred_relevant_windows=r['pred_relevant_windows'])
                 for r in results]
        gts = [dict(qid=r['qid'], relevant_windows=r['gt_windows']) for r in results]
        metrics = eval_moment_retrieval(preds, gts,
                                        iou_thresholds=self.iou_thresholds,
                                        map_iou_thresholds=MAP_IOU_THRESHOLDS,
                                        max_windows=self.max_windows)
        if self.chance_draws:
            metrics.update(self.chance_level(results))
        return metrics

    def chance_level(self, results: list) -> Dict[str, float]:
        """R1 / mIoU (percent) of uniformly random windows, averaged over seeded draws."""
        rng = np.random.default_rng(0)
        gts = [r['gt_windows'] for r in results]
        durations = np.array([r['duration'] for r in results])
        r1_sum, miou_sum = np.zeros(len(self.iou_thresholds)), 0.0
        for _ in range(self.chance_draws):
            ends = np.sort(rng.uniform(0, 1, (len(results), 2)), axis=1) * durations[:, None]
            preds = [np.array([[s, e, 1.0]]) for s, e in ends]
            r1, miou = r1_and_miou(preds, gts, self.iou_thresholds)
            r1_sum += r1
            miou_sum += miou
        out = {f'chance/R1@{t:g}': 100 * v / self.chance_draws
               for t, v in zip(self.iou_thresholds, r1_sum)}
        out['chance/mIoU'] = 100 * miou_sum / self.chance_draws
        return out
