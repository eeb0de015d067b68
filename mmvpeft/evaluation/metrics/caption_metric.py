"""Captioning / summarization metric: pycocoevalcap's scorers (and ROUGE F1) over
generated texts."""
from typing import Any, Dict, Optional, Sequence

from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmvpeft.evaluation.functional.caption_metrics import (COCO_METRICS, coco_caption_scores,
                                                           rouge_f1_scores, skipped_metrics)
from mmvpeft.registry import METRICS


@METRICS.register_module()
class CaptionMetric(BaseMetric):
    """BLEU-1..4, METEOR, ROUGE_L, CIDEr of one generated text per item (x100).

    Each data sample holds the prediction (``pred_key``, e.g. ``VideoCaptioner``'s
    ``pred_text``), its references (``ref_key``: a list of str, or one str) and an id
    (``id_key``). The scores are pycocoevalcap's (see
    :func:`~mmvpeft.evaluation.functional.caption_metrics.coco_caption_scores`); METEOR is
    skipped where Java is missing: every evaluation then prints which metrics were skipped
    and why (and :attr:`skipped` holds ``{metric: reason}``), so a table built from the log
    never silently lacks a column.

    Args:
        scorers: pycocoevalcap scorers to run (``'BLEU'``, ``'METEOR'``, ``'ROUGE_L'``,
            ``'CIDEr'``). (Not ``metrics=``: MMEngine reads a ``metrics`` key as an
            evaluator of several metrics.)
        rouge_f1: also report ROUGE-1, ROUGE-2 and ROUGE-L-F1 (summarization).
        tokenizer: ``'auto'``, ``'ptb'`` or ``'simple'``.
        pred_key, ref_key, id_key: data sample keys.
    """

    default_prefix: Optional[str] = None

    def __init__(self, scorers: Sequence[str] = COCO_METRICS, rouge_f1: bool = False,
                 tokenizer: str = 'auto', pred_key: str = 'pred_text', ref_key: str = 'captions',
                 id_key: str = 'vid', collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        unknown = [m for m in scorers if m not in COCO_METRICS]
        if unknown:
            raise ValueError(f'unknown caption scorers {unknown}; choose from {COCO_METRICS}')
        self.scorers, self.rouge_f1, self.tokenizer = tuple(scorers), rouge_f1, tokenizer
        self.pred_key, self.ref_key, self.id_key = pred_key, ref_key, id_key
        self.skipped: Dict[str, str] = {}

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            ident = sample.get(self.id_key)
            for key in (self.id_key, self.pred_key, self.ref_key):
                if key not in sample:
                    raise KeyError(f'CaptionMetric needs "{key}" in each data sample '
                                   f'({self.id_key}={ident!r})')
            refs = sample[self.ref_key]
            refs = [refs] if isinstance(refs, str) else list(refs)
            self.results.append((str(ident), str(sample[self.pred_key]), refs))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        preds, refs = {}, {}
        for ident, pred, ref in results:
            if ident in preds:
                raise ValueError(f'{self.id_key}={ident!r} was predicted twice')
            preds[ident], refs[ident] = pred, ref
        self.skipped = skipped_metrics(self.scorers)
        for name, reason in self.skipped.items():
            print_log(f'{type(self).__name__}: {name} skipped: {reason}', logger='current',
                      level=30)
        out = coco_caption_scores(preds, refs, self.scorers, self.tokenizer)
        if self.rouge_f1:
            out.update(rouge_f1_scores(preds, refs, self.tokenizer))
        return out
