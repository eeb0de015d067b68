"""QVHighlights highlight-detection metric (HIT@1 and mAP per saliency level)."""
from typing import Any, Dict, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from mmvpeft.evaluation.functional.moment_metrics import (SALIENCY_LEVELS, as_float_array,
                                                          highlight_metrics, saliency_matrix)
from mmvpeft.registry import METRICS


@METRICS.register_module()
class HighlightMetric(BaseMetric):
    """HIT@1 and mAP of predicted clip saliency, in percent (moment_detr ``eval_highlight``).

    For each level ``name: min_score`` (default ``Fair: 2``, ``Good: 3``, ``VeryGood: 4``)
    an annotator's clip is positive when its score is >= ``min_score``. HIT@1 counts the
    top-scored clip as a hit when any annotator marks it positive; mAP averages the
    interpolated AP over annotators and queries. See
    :func:`~mmvpeft.evaluation.functional.moment_metrics.eval_highlight`.

    Each item of ``data_samples`` is a dict with ``qid``, ``pred_saliency_scores``
    (``(C',)``, one score per clip), and the QVHighlights annotation: ``duration``
    (seconds), ``relevant_clip_ids`` (``(K,)``) and ``saliency_scores`` (``(K, A)``, 0-4).

    Args:
        clip_length: seconds per clip; the video has ``int(duration / clip_length)`` clips.
        levels: ``{name: min_score}`` saliency levels.
        collect_device: ``'cpu'`` or ``'gpu'``, for gathering results across ranks.
        prefix: prefix of the metric names.

    Returned keys: ``HL-min-{name}-mAP`` and ``HL-min-{name}-Hit1`` for each level.
    """

    default_prefix: Optional[str] = None

    def __init__(self,
                 clip_length: float = 2.0,
                 levels: Optional[Dict[str, int]] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if clip_length <= 0:
            raise ValueError(f'clip_length must be > 0, got {clip_length}')
        self.clip_length = float(clip_length)
        self.levels = dict(SALIENCY_LEVELS if levels is None else levels)

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep each sample's predicted scores and its full-video ``(C, A)`` GT matrix."""
        for sample in data_samples:
            for key in ('qid', 'pred_saliency_scores', 'duration', 'relevant_clip_ids',
                        'saliency_scores'):
                if sample.get(key) is None:
                    raise KeyError(f'{type(self).__name__} needs "{key}" in each data sample '
                                   f'(qid={sample.get("qid")!r})')
            qid = sample['qid']
            scores = as_float_array(sample['pred_saliency_scores']).reshape(-1)
            if not len(scores) or not np.isfinite(scores).all():
                raise ValueError(f'qid={qid!r}: "pred_saliency_scores" must be non-empty '
                                 'and finite')
            gt = saliency_matrix(float(as_float_array(sample['duration'])),
                                 as_float_array(sample['relevant_clip_ids']).astype(int),
                                 sample['saliency_scores'], self.clip_length, qid)
            self.results.append(dict(pred=scores, gt=gt))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Compute the metrics from the gathered ``results`` (rank 0 only)."""
        return highlight_metrics([r['pred'] for r in results], [r['gt'] for r in results],
                                 self.levels)
