"""``--show-dir`` pictures for temporal grounding and highlight detection: the timeline of
each query (frames when the video file is known, ground truth, the best predicted windows
and the predicted per-clip saliency), drawn with :func:`draw_timeline`."""
from typing import List, Tuple

import numpy as np

from mmvpeft.evaluation.functional.moment_metrics import as_float_array, sort_by_score
from mmvpeft.registry import METRICS
from .drawing import ShowMetric, safe_name
from .timeline import draw_timeline, read_thumbnails


@METRICS.register_module()
class MomentVisualizer(ShowMetric):
    """One timeline PNG per query, ``moment_{k}_{qid}.png``.

    Reads ``pred_relevant_windows`` ``(K, 3)`` and ``pred_saliency_scores`` ``(T,)`` (the
    model's), and ``gt_windows``, ``duration``, ``clip_len``, ``query``, ``video_path``
    (the data's) from each data sample.

    Args:
        out_dir, show_num: see :class:`~mmvpeft.visualization.drawing.ShowMetric`.
        top_k: predicted windows drawn per query.
        thumbnails: frames drawn above the axis (when the sample has a video file).
    """

    required = ('qid', 'pred_relevant_windows')

    def __init__(self, out_dir: str, show_num: int = 20, top_k: int = 3, thumbnails: int = 6,
                 **kwargs) -> None:
        super().__init__(out_dir, show_num, **kwargs)
        self.top_k, self.thumbnails = int(top_k), int(thumbnails)

    def record(self, sample: dict) -> dict:
        windows = as_float_array(sample['pred_relevant_windows']).reshape(-1, 3)
        saliency = sample.get('pred_saliency_scores')
        saliency = [] if saliency is None else as_float_array(saliency).reshape(-1).tolist()
        clip_len = float(sample.get('clip_len') or 1.0)
        gt = sample.get('gt_windows')
        duration = sample.get('duration')
        if duration is None:  # fall back to what the prediction covers
            duration = max([clip_len * len(saliency)] + windows[:, 1].tolist() + [1.0])
        return dict(qid=sample['qid'], query=sample.get('query', ''),
                    windows=sort_by_score(windows).tolist(), saliency=saliency,
                    clip_len=clip_len, duration=float(duration),
                    gt=None if gt is None else as_float_array(gt).reshape(-1, 2).tolist(),
                    video_path=sample.get('video_path'))

    def draw(self, results: List[dict]) -> List[Tuple[str, np.ndarray]]:
        out = []
        for k, r in enumerate(results[:self.show_num]):
            n = self.thumbnails
            times = ((np.arange(n) + 0.5) * r['duration'] / n).tolist()
            thumbs = read_thumbnails(r['video_path'], times) if r['video_path'] and n else []
            img = draw_timeline(r['duration'], r['windows'], r['saliency'], r['clip_len'],
                                thumbs, gt_windows=r['gt'], query=r['query'], top_k=self.top_k)
            out.append((f'moment_{k:03d}_{safe_name(r["qid"])}.png', img))
        return out
