"""Video + transcript -> summary on the synthetic moving-shape videos (CPU demo, tests)."""
from typing import Dict, List

from mmvpeft.registry import DATASETS
from mmvpeft.utils.fileio import iter_jsonl
from ..base import AnnotationError
from ..retrieval.synthetic import SyntheticRetrievalDataset
from ..synthetic.summarization import synthetic_summary, synthetic_transcript


@DATASETS.register_module()
class SyntheticSummarizationDataset(SyntheticRetrievalDataset):
    """The synthetic retrieval videos with a transcript each and a one-line summary.

    Items: ``vid``, ``captions`` = [summary], ``transcript``
    (:func:`synthetic_transcript`). Videos and attributes come from
    :func:`~mmvpeft.datasets.synthetic.retrieval.generate_synthetic_retrieval`.

    Args:
        num_filler: filler sentences per transcript.
        **kwargs: as :class:`SyntheticRetrievalDataset` (``data_root``, ``split``,
            ``generator``, ``pipeline``, ``test_mode``).
    """

    def __init__(self, num_filler: int = 5, **kwargs) -> None:
        self.num_filler = num_filler
        super().__init__(**kwargs)

    def load_videos(self) -> List[Dict]:
        ann_file = self._require_file(self.ann_file, 'ann_file')
        videos = []
        for lineno, rec in iter_jsonl(ann_file, AnnotationError):
            where = f'{ann_file}:{lineno}'
            missing = [k for k in ('vid', 'color', 'shape', 'direction') if k not in rec]
            if missing:
                raise AnnotationError(f'{where}: missing field(s) {missing}')
            attrs = (rec['color'], rec['shape'], rec['direction'])
            videos.append(dict(
                vid=rec['vid'], video=rec.get('video'), where=where,
                captions=[synthetic_summary(*attrs)],
                extra=dict(transcript=synthetic_transcript(rec['vid'], *attrs,
                                                           num_filler=self.num_filler))))
        return videos
