"""Highlight-detection metric: QVHighlights (HIT@1 and mAP per saliency level), YouTube
Highlights and TVSum (mAP per domain)."""
from typing import Any, Dict, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric

from mmvpeft.evaluation.functional.highlight_metrics import (DOMAIN_PROTOCOLS, SALIENCY_LEVELS,
                                                             as_float_array,
                                                             binarize_clip_labels,
                                                             chance_highlight, check_saliency,
                                                             domain_highlight_metrics,
                                                             highlight_metrics,
                                                             resample_to_label_clips,
                                                             saliency_matrix)
from mmvpeft.registry import METRICS

PROTOCOLS = ('qvhighlights', ) + DOMAIN_PROTOCOLS


@METRICS.register_module()
class HighlightMetric(BaseMetric):
    """Highlight detection from predicted clip saliency, in percent.

    ``protocol='qvhighlights'`` (moment_detr ``eval_highlight``): for each level
    ``name: min_score`` (default ``Fair: 2``, ``Good: 3``, ``VeryGood: 4``) an annotator's clip
    is positive when its score is >= ``min_score``; HIT@1 counts the top-scored clip as a hit
    when any annotator marks it positive; mAP averages the interpolated AP over annotators and
    queries. Samples need ``qid``, ``pred_saliency_scores`` ``(C',)``, ``duration``,
    ``relevant_clip_ids`` ``(K,)`` and ``saliency_scores`` ``(K, A)``.

    ``protocol='youtube'`` / ``'tvsum'`` (UMT / UniVTG): per-video ranking AP, averaged per
    domain, then over domains (see :mod:`mmvpeft.evaluation.functional.highlight_metrics`).
    Samples need ``qid``, ``pred_saliency_scores``, ``clip_labels`` ``(C, A)``, ``domain``,
    and, when the annotated clips are not the model's rows, ``label_windows`` ``(C, 2)``
    seconds with ``clip_len`` (then each annotated clip takes the score of the row holding its
    centre).

    The functions are the ones ``tools/eval_moments.py`` uses on a submission file.

    Args:
        protocol: ``'qvhighlights'``, ``'youtube'`` or ``'tvsum'``.
        clip_length: QVHighlights seconds per clip; the video has ``int(duration /
            clip_length)`` clips.
        levels: QVHighlights ``{name: min_score}`` saliency levels.
        top_k: clips of each ranking that count (None: 5 for TVSum, all for YouTube).
        chance_draws: if > 0, also report the chance level (uniformly random clip scores,
            averaged over this many seeded draws) under ``chance/`` keys.
        collect_device: ``'cpu'`` or ``'gpu'``, for gathering results across ranks.
        prefix: prefix of the metric names.

    Returned keys: QVHighlights ``HL-min-{name}-mAP`` and ``HL-min-{name}-Hit1`` per level;
    YouTube / TVSum ``HL-mAP`` and ``HL-{domain}-mAP``; with ``chance_draws`` the same under
    ``chance/``.
    """

    default_prefix: Optional[str] = None

    def __init__(self,
                 protocol: str = 'qvhighlights',
                 clip_length: float = 2.0,
                 levels: Optional[Dict[str, int]] = None,
                 top_k: Optional[int] = None,
                 chance_draws: int = 0,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if protocol not in PROTOCOLS:
            raise ValueError(f'protocol must be one of {PROTOCOLS}, got {protocol!r}')
        if clip_length <= 0:
            raise ValueError(f'clip_length must be > 0, got {clip_length}')
        self.protocol = protocol
        self.clip_length = float(clip_length)
        self.levels = dict(SALIENCY_LEVELS if levels is None else levels)
        self.top_k = 5 if top_k is None and protocol == 'tvsum' else top_k
        self.chance_draws = int(chance_draws)

    def _require(self, sample: dict, keys) -> None:
        for key in keys:
            if sample.get(key) is None:
                raise KeyError(f'{type(self).__name__}(protocol={self.protocol!r}) needs "{key}" '
                               f'in each data sample (qid={sample.get("qid")!r})')

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep each sample's predicted scores and its GT (QVHighlights: the full-video
        ``(C, A)`` score matrix; YouTube / TVSum: ``(C, A)`` binary positives)."""
        for sample in data_samples:
            qid = sample.get('qid')
            qid = qid.item() if hasattr(qid, 'item') else qid
            if self.protocol == 'qvhighlights':
                self._require(sample, ('qid', 'pred_saliency_scores', 'duration',
                                       'relevant_clip_ids', 'saliency_scores'))
                scores = check_saliency(sample, qid)
                gt = saliency_matrix(float(as_float_array(sample['duration'])),
                                     as_float_array(sample['relevant_clip_ids']).astype(int),
                                     sample['saliency_scores'], self.clip_length, qid)
                self.results.append(dict(pred=scores, gt=gt))
                continue
            self._require(sample, ('qid', 'pred_saliency_scores', 'clip_labels', 'domain'))
            scores = check_saliency(sample, qid)
            if sample.get('label_windows') is not None:
                scores = resample_to_label_clips(scores, sample['clip_len'],
                                                 sample['label_windows'])
            self.results.append(dict(
                pred=scores, gt=binarize_clip_labels(sample['clip_labels'], self.protocol, qid),
                domain=sample['domain']))

    def _metrics(self, scores, results) -> Dict[str, float]:
        if self.protocol == 'qvhighlights':
            return highlight_metrics(scores, [r['gt'] for r in results], self.levels)
        return domain_highlight_metrics(scores, [r['gt'] for r in results],
                                        [r['domain'] for r in results], self.top_k)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Compute the metrics from the gathered ``results`` (rank 0 only)."""
        out = self._metrics([r['pred'] for r in results], results)
        if self.chance_draws:
            chance = chance_highlight(lambda s: self._metrics(s, results),
                                      [len(r['gt']) for r in results], self.chance_draws)
            out.update({f'chance/{k}': v for k, v in chance.items()})
        return out
