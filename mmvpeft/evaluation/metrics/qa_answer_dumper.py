"""Write video QA predictions as JSON lines (``tools/test.py --dump answers.jsonl``)."""
from typing import Any, Sequence

from mmvpeft.registry import METRICS
from .submission_dumper import MomentSubmissionDumper, _plain


@METRICS.register_module()
class QAAnswerDumper(MomentSubmissionDumper):
    """One JSON line per question; computes no metric.

    Each line is ``{"qid", "vid", "question", "pred_answer", "answer"}``, plus
    ``"topk_answers"`` / ``"topk_scores"`` (scores rounded to 4 decimals) when the model
    gave them. Only strings are read, so any QA model (classifier or generator) whose
    ``predict`` sets ``pred_answer`` can use it. Lines follow the gathered results
    (dataset order); the file is written atomically on rank 0 as
    :class:`MomentSubmissionDumper` writes its files.

    Args:
        out_file: path of the ``.jsonl`` file; missing parent folders are created.
        collect_device, prefix: as :class:`~mmengine.evaluator.BaseMetric`.
    """

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            for key in ('qid', 'vid', 'question', 'pred_answer'):
                if key not in sample:
                    raise KeyError(f'{type(self).__name__} needs "{key}" in each data sample '
                                   f'(qid={sample.get("qid")!r})')
            record = dict(qid=_plain(sample['qid']), vid=sample['vid'],
                          question=sample['question'], pred_answer=sample['pred_answer'],
                          answer=sample.get('answer'))
            if sample.get('topk_answers') is not None:
                record['topk_answers'] = list(sample['topk_answers'])
                record['topk_scores'] = [round(float(s), 4) for s in sample['topk_scores']]
            self.results.append(record)
