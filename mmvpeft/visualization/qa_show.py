"""``--show-dir`` pictures for video QA: the frames, the question, the predicted answer
with its probability, the other top answers, and the truth."""
from typing import List, Tuple

import numpy as np

from mmvpeft.registry import METRICS
from .drawing import (BAD, GOOD, GREY, TEXT, ShowMetric, frame_strip, place, safe_name, stack,
                      text_block)


@METRICS.register_module()
class QAVisualizer(ShowMetric):
    """One PNG per question, ``qa_{k}_{qid}.png``.

    Reads ``question``, ``pred_answer``, ``answer`` and, from a classifier
    (:class:`~mmvpeft.models.VideoQA`), ``topk_answers`` / ``topk_scores`` (softmax
    probabilities); a generator gives no probability and the picture says so. The predicted
    answer is green when it equals the truth (after the metric's normalisation), red
    otherwise.

    Args:
        out_dir, show_num: see :class:`~mmvpeft.visualization.drawing.ShowMetric`.
    """

    required = ('qid', 'question', 'pred_answer')

    def record(self, sample: dict) -> dict:
        scores = sample.get('topk_scores')
        return dict(qid=sample['qid'], question=str(sample['question']),
                    pred=str(sample['pred_answer']), answer=sample.get('answer'),
                    topk=list(zip(sample.get('topk_answers') or [],
                                  [float(s) for s in (scores or [])])),
                    video_path=sample.get('video_path'), frame_inds=sample.get('frame_inds'))

    def draw(self, results: List[dict]) -> List[Tuple[str, np.ndarray]]:
        from mmvpeft.evaluation.functional.qa_metrics import normalize_answer
        out = []
        for k, r in enumerate(results[:self.show_num]):
            right = r['answer'] is not None and \
                normalize_answer(r['pred']) == normalize_answer(str(r['answer']))
            prob = f'p = {r["topk"][0][1]:.3f}' if r['topk'] else 'no probability (generated)'
            lines = [(f'Q: {r["question"]}', TEXT),
                     (f'predicted: {r["pred"]}   ({prob})', GOOD if right else BAD),
                     (f'truth: {r["answer"] if r["answer"] is not None else "unknown"}', TEXT)]
            if len(r['topk']) > 1:
                lines.append(('top answers: ' + ',  '.join(f'{a} {s:.3f}' for a, s in r['topk']),
                              GREY))
            img = stack([place(frame_strip(r['video_path'], frame_inds=r['frame_inds'])),
                         text_block(lines)])
            out.append((f'qa_{k:03d}_{safe_name(r["qid"])}.png', img))
        return out
