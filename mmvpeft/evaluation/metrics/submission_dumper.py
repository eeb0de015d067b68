"""Write predictions as a moment_detr / QVHighlights submission (``.jsonl``)."""
from typing import Any, Dict, Optional, Sequence

from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmvpeft.evaluation.functional.highlight_metrics import resample_to_label_clips
from mmvpeft.evaluation.functional.moment_metrics import as_float_array, sort_by_score
from mmvpeft.registry import METRICS
from mmvpeft.utils.fileio import write_jsonl


def _plain(value: Any) -> Any:
    """numpy / torch scalars -> Python scalars, so that ``json`` can write them."""
    return value.item() if hasattr(value, 'item') else value


@METRICS.register_module()
class MomentSubmissionDumper(BaseMetric):
    """Dump one JSON line per query; computes no metric.

    Each line is ``{"qid", "query", "vid", "pred_relevant_windows": [[start, end, score],
    ...]}`` with windows sorted by descending score (stable on ties) and every float rounded
    to 4 decimals, plus ``"pred_saliency_scores": [float, ...]`` when the sample has them.
    Lines follow the order of the gathered results (dataset order).

    The file is written on rank 0 with :func:`~mmvpeft.utils.fileio.write_jsonl` (a temporary
    file in the target folder moved into place), so a reader never sees a half-written file.

    Args:
        out_file: path of the ``.jsonl`` file; missing parent folders are created.
        collect_device: ``'cpu'`` or ``'gpu'``, for gathering results across ranks.
        prefix: unused by the (empty) result dict; kept for the BaseMetric interface.
    """

    default_prefix: Optional[str] = None

    def __init__(self,
                 out_file: str,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not isinstance(out_file, str) or not out_file.endswith('.jsonl'):
            raise ValueError(f'out_file must be a path ending in ".jsonl", got {out_file!r}')
        self.out_file = out_file

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep the submission record of each sample."""
        for sample in data_samples:
            for key in ('qid', 'query', 'vid', 'pred_relevant_windows'):
                if key not in sample:
                    raise KeyError(f'{type(self).__name__} needs "{key}" in each data sample '
                                   f'(qid={sample.get("qid")!r})')
            qid = _plain(sample['qid'])
            windows = as_float_array(sample['pred_relevant_windows'])
            windows = windows.reshape(0, 3) if windows.size == 0 else windows
            if windows.ndim != 2 or windows.shape[1] != 3:
                raise ValueError(f'qid={qid!r}: "pred_relevant_windows" must be (N, 3) '
                                 f'[start, end, score] rows, got shape {windows.shape}')
            # Sort on the raw scores: rounding first could turn an order into a tie.
            record = dict(
                qid=qid,
                query=sample['query'],
                vid=sample['vid'],
                pred_relevant_windows=[[round(float(v), 4) for v in row]
                                       for row in sort_by_score(windows)])
            saliency = sample.get('pred_saliency_scores')
            if saliency is not None and sample.get('label_windows') is not None:
                # YouTube Highlights: one score per annotated clip, as the GT file counts them
                saliency = resample_to_label_clips(saliency, sample['clip_len'],
                                                   sample['label_windows'])
            if saliency is not None:
                record['pred_saliency_scores'] = [
                    round(float(v), 4) for v in as_float_array(saliency).reshape(-1)]
            self.results.append(record)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Write ``results`` to :attr:`out_file` atomically; returns ``{}``."""
        write_jsonl(self.out_file, results)
        print_log(f'wrote {len(results)} predictions to {self.out_file}', logger='current')
        return {}
