"""Open-ended video QA accuracy for MMEngine evaluators."""
from typing import Any, Dict, Optional, Sequence

from mmengine.evaluator import BaseMetric

from mmvpeft.evaluation.functional.qa_metrics import qa_accuracy, question_type
from mmvpeft.registry import METRICS


@METRICS.register_module()
class QAAccuracyMetric(BaseMetric):
    """Exact-match accuracy of ``pred_answer`` strings, overall and per question type.

    Scores strings only, however they were produced (a classifier's top answer or a
    decoder's generated text), after :func:`~mmvpeft.evaluation.functional.qa_metrics.
    normalize_answer`. Each item given to :meth:`process` is a dict with ``qid``,
    ``pred_answer`` (str) and ``answer`` (the ground-truth str), and optionally
    ``question_type`` or ``question``; the type is ``question_type`` when present, otherwise
    the question's first word (MSRVTT-QA: what / who / how / when / where).

    Returned keys (percent): ``acc``; ``acc/{type}`` per type (with ``per_type``); and
    ``in_vocab``, the share of questions whose answer the vocabulary holds (the ceiling of
    a classifier), when every item carries ``answer_label`` (-1 = outside the vocabulary).
    Items are de-duplicated by ``qid`` (the distributed sampler repeats some to even out
    ranks).

    Args:
        per_type: Report ``acc/{type}``.
        collect_device: ``'cpu'`` or ``'gpu'``, for gathering results across ranks.
        prefix: Prefix of the metric names.
    """

    default_prefix: Optional[str] = None

    def __init__(self, per_type: bool = True, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.per_type = per_type

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep ``(qid, pred_answer, answer, type, answer_label)`` of each sample."""
        for sample in data_samples:
            for key in ('qid', 'pred_answer', 'answer'):
                if key not in sample:
                    raise KeyError(f'{type(self).__name__} needs "{key}" in each data sample '
                                   f'(qid={sample.get("qid")!r})')
            pred = sample['pred_answer']
            if not isinstance(pred, str):
                raise TypeError(f'qid={sample["qid"]!r}: "pred_answer" must be a str, got '
                                f'{type(pred).__name__}')
            qtype = sample.get('question_type')
            if qtype is None and sample.get('question') is not None:
                qtype = question_type(sample['question'])
            label = sample.get('answer_label')
            self.results.append(dict(qid=sample['qid'], pred=pred, answer=sample['answer'],
                                     type=qtype, label=None if label is None else int(label)))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        unique = {}
        for r in results:
            unique.setdefault(str(r['qid']), r)
        rows = list(unique.values())
        types = None
        if self.per_type and all(r['type'] is not None for r in rows):
            types = [r['type'] for r in rows]
        out = dict(qa_accuracy([r['pred'] for r in rows], [r['answer'] for r in rows], types))
        if all(r['label'] is not None for r in rows):
            out['in_vocab'] = 100.0 * sum(r['label'] >= 0 for r in rows) / len(rows)
        return out
