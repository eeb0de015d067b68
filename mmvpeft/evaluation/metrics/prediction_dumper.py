"""Write generated texts (captions, summaries) as JSON lines."""
from typing import Any, Optional, Sequence

from mmvpeft.registry import METRICS
from .submission_dumper import MomentSubmissionDumper


@METRICS.register_module()
class PredictionDumper(MomentSubmissionDumper):
    """One JSON line per item: ``{"id", "video", "prediction", "references"}``; no metric.

    Written atomically on rank 0 in dataset order, like :class:`MomentSubmissionDumper`.

    Args:
        out_file: ``.jsonl`` path.
        pred_key, ref_key, id_key, video_key: data sample keys of the prediction, the
            references (may be absent: written as null), the id and the video file.
    """

    def __init__(self, out_file: str, pred_key: str = 'pred_text', ref_key: str = 'captions',
                 id_key: str = 'vid', video_key: str = 'video_path',
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(out_file, collect_device=collect_device, prefix=prefix)
        self.pred_key, self.ref_key = pred_key, ref_key
        self.id_key, self.video_key = id_key, video_key

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            for key in (self.id_key, self.pred_key):
                if key not in sample:
                    raise KeyError(f'PredictionDumper needs "{key}" in each data sample '
                                   f'({self.id_key}={sample.get(self.id_key)!r})')
            refs = sample.get(self.ref_key)
            self.results.append(dict(
                id=sample[self.id_key], video=sample.get(self.video_key),
                prediction=sample[self.pred_key],
                references=[refs] if isinstance(refs, str) else refs))
