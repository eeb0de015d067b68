"""``VideoQADataset`` over the synthetic moving-shape videos, for the CPU demo and tests."""
from typing import Dict, List, Optional, Sequence

from mmengine.dist import barrier, get_dist_info

from mmvpeft.registry import DATASETS
from mmvpeft.utils.fileio import iter_jsonl
from ..base import AnnotationError
from ..synthetic.qa import QUESTIONS, SYNTHETIC_ANSWERS  # noqa: F401 (re-exported)
from ..synthetic.retrieval import generate_synthetic_retrieval
from .base import VideoQADataset


@DATASETS.register_module()
class SyntheticQADataset(VideoQADataset):
    """Questions about what the synthetic retrieval videos show.

    The videos and their attributes come from
    :func:`~mmvpeft.datasets.synthetic.retrieval.generate_synthetic_retrieval` (written under
    ``data_root`` on first use; rank 0 generates while the others wait). Every video gets
    one question per type in ``question_types``; answers are its colour, shape and
    direction, so answering needs colour, shape *and* motion over time. The val videos
    are balanced over the attributes (see the generator), so with the default 24 val
    videos a constant answer gets at most 1/3 of the shape questions right. Nothing is
    written besides the generator's files: the questions are built in memory.

    Args:
        data_root: Output folder of the generator.
        split: ``'train'`` or ``'val'``.
        generator: Arguments of ``generate_synthetic_retrieval``.
        question_types: Subset of ``('color', 'shape', 'direction')``.
        **kwargs: As :class:`VideoQADataset` (``answer_vocab``, ``pipeline``, ...).
    """

    def __init__(self, data_root: str, split: str = 'train', generator: Optional[dict] = None,
                 question_types: Sequence[str] = tuple(QUESTIONS), **kwargs) -> None:
        if split not in ('train', 'val'):
            raise ValueError(f'split must be "train" or "val", got {split!r}')
        unknown = [t for t in question_types if t not in QUESTIONS]
        if unknown or not question_types:
            raise ValueError(f'question_types must be a non-empty subset of {tuple(QUESTIONS)},'
                             f' got {tuple(question_types)}')
        self.question_types = tuple(question_types)
        rank, world_size = get_dist_info()
        if rank == 0:
            generate_synthetic_retrieval(data_root, **(generator or {}))
        if world_size > 1:
            barrier()
            if rank != 0:
                generate_synthetic_retrieval(data_root, **(generator or {}))
        super().__init__(ann_file=f'annotations_{split}.jsonl', data_root=data_root,
                         video_dir='videos', **kwargs)

    def load_questions(self) -> List[Dict]:
        ann_file = self._require_file(self.ann_file, 'ann_file')
        questions = []
        for lineno, rec in iter_jsonl(ann_file, AnnotationError):
            where = f'{ann_file}:{lineno}'
            for qtype in self.question_types:
                text, field = QUESTIONS[qtype]
                if field not in rec:
                    raise AnnotationError(f'{where}: missing field "{field}" '
                                          f'(vid={rec.get("vid")!r})')
                questions.append(dict(qid=f'{rec["vid"]}#{qtype}', vid=str(rec['vid']),
                                      video=rec.get('video'), question=text,
                                      answer=rec[field], question_type=qtype, where=where))
        return questions
