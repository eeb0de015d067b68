"""The answer vocabulary of open-ended QA as classification: the top-K training answers.

Built from the normalised training answers
(:func:`~mmvpeft.evaluation.functional.qa_metrics.normalize_answer`): the ``top_k`` most
frequent (MSRVTT-QA convention: 1,500), ties broken by the answer string, so the same
annotations always give the same label ids. Saved as JSON::

    {"answers": [...], "counts": [...], "top_k": 1500, "source": "train_qa.json",
     "source_sha256": "...", "sha256": "..."}

so that training and testing (and every process) agree on the label of each answer.
``sha256`` is :attr:`AnswerVocab.digest` (of the answers in order): the model
(:class:`~mmvpeft.models.tasks.VideoQA`), which reads only this file and never the
annotations, checks it when it loads the file. Made once, by
``python tools/build_answer_vocab.py ANN_FILE OUT_FILE --top-k 1500`` or by the dataset on
first use (``answer_vocab=dict(source=..., top_k=..., file=...)``). An
existing file is loaded, after checking it was built with the same ``top_k`` from the same
source file (sha256); a mismatch is an error naming the file, never a silent rebuild (a
trained model's head depends on the ids).
"""
import hashlib
import json
import os.path as osp
from collections import Counter
from typing import Dict, Iterable, List, Optional, Sequence

from mmvpeft.evaluation.functional.qa_metrics import normalize_answer
from mmvpeft.utils.fileio import write_json_atomic
from .records import read_qa_records, require_str


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


class AnswerVocab:
    """Answer strings <-> label ids.

    Args:
        answers: Normalised answers in label order (unique).
        counts: Optional training count of each.
        meta: Optional provenance (``top_k``, ``source``, ``source_sha256``).
    """

    def __init__(self, answers: Sequence[str], counts: Optional[Sequence[int]] = None,
                 meta: Optional[dict] = None) -> None:
        answers = [normalize_answer(a) for a in answers]
        if not answers:
            raise ValueError('an answer vocabulary needs at least one answer')
        dup = [a for a, n in Counter(answers).items() if n > 1]
        if dup or '' in answers:
            raise ValueError(f'answer vocabulary has duplicate or empty answers after '
                             f'normalisation: {(dup + [""] * ("" in answers))[:5]}')
        self.answers: List[str] = answers
        self.counts = None if counts is None else [int(c) for c in counts]
        self.meta = dict(meta or {})
        self._index: Dict[str, int] = {a: i for i, a in enumerate(answers)}

    def __len__(self) -> int:
        return len(self.answers)

    def index(self, answer: str) -> int:
        """Label of ``answer`` (normalised first), -1 outside the vocabulary."""
        return self._index.get(normalize_answer(answer), -1)

    @property
    def digest(self) -> bytes:
        """sha256 of the answers in order: equal digests, equal label ids."""
        return hashlib.sha256('\n'.join(self.answers).encode('utf-8')).digest()

    @classmethod
    def from_answers(cls, answers: Iterable[str], top_k: int = 1500,
                     meta: Optional[dict] = None) -> 'AnswerVocab':
        """The ``top_k`` most frequent normalised answers, ties by the answer string."""
        if top_k < 1:
            raise ValueError(f'top_k must be >= 1, got {top_k}')
        counts = Counter(normalize_answer(a) for a in answers)
        counts.pop('', None)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
        return cls([a for a, _ in ranked], [c for _, c in ranked],
                   dict(meta or {}, top_k=int(top_k)))

    def save(self, path: str) -> None:
        """Write the JSON file atomically, with the ``sha256`` digest of the answers."""
        write_json_atomic(path, dict(self.meta, answers=self.answers, counts=self.counts,
                                     sha256=self.digest.hex()), indent=0)

    @classmethod
    def load(cls, path: str) -> 'AnswerVocab':
        with open(path, encoding='utf-8') as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f'answer vocabulary {path}: invalid JSON ({e})') from e
        if not isinstance(data, dict) or not isinstance(data.get('answers'), list):
            raise ValueError(f'answer vocabulary {path}: expected an object with a list '
                             '"answers"')
        meta = {k: v for k, v in data.items() if k not in ('answers', 'counts', 'sha256')}
        try:
            vocab = cls(data['answers'], data.get('counts'), meta)
        except ValueError as e:
            raise ValueError(f'answer vocabulary {path}: {e}') from e
        recorded = data.get('sha256')  # files written before the digest was recorded: none
        if recorded is not None and recorded != vocab.digest.hex():
            raise ValueError(f'answer vocabulary {path}: the answers do not match the recorded '
                             f'sha256 {recorded}; the file was edited or is truncated')
        return vocab


def _join(root: Optional[str], path: Optional[str]) -> Optional[str]:
    if path is None or not root or osp.isabs(path):
        return path
    return osp.join(root, path)


def build_answer_vocab(answers: Optional[Sequence[str]] = None,
                       source: Optional[str] = None,
                       top_k: int = 1500,
                       file: Optional[str] = None,
                       data_root: Optional[str] = None) -> AnswerVocab:
    """The vocabulary a config describes (model and datasets take the same dict).

    Args:
        answers: An explicit answer list in label order (e.g. a synthetic set's attribute
            values); ``source``/``file`` are then unused.
        source: Training annotation file (a JSON list or JSON lines of records with an
            ``"answer"``) to count answers in.
        top_k: Answers kept (MSRVTT-QA: 1,500).
        file: JSON file of the vocabulary: loaded when it exists (checked against
            ``source`` and ``top_k``), otherwise built from ``source`` and written there.
        data_root: Folder that relative ``source``/``file`` paths are joined to (the dataset's
            ``data_root``).

    Raises:
        ValueError: the file was built with another ``top_k`` or from another source file.
        FileNotFoundError: neither the file nor the source exists.
    """
    if answers is not None:
        return AnswerVocab(answers, meta=dict(source='explicit'))
    source, file = _join(data_root, source), _join(data_root, file)
    if file is not None and osp.isfile(file):
        vocab = AnswerVocab.load(file)
        if vocab.meta.get('top_k') != int(top_k):
            raise ValueError(f'answer vocabulary {file} was built with top_k='
                             f'{vocab.meta.get("top_k")}, the config asks for {top_k}; delete '
                             'the file to rebuild it (then retrain: label ids change) or point '
                             'answer_vocab.file elsewhere')
        if source is not None and osp.isfile(source):
            sha = _sha256_file(source)
            if vocab.meta.get('source_sha256') != sha:
                raise ValueError(f'answer vocabulary {file} was built from another version of '
                                 f'{source} (sha256 {vocab.meta.get("source_sha256")} != {sha});'
                                 ' delete the file to rebuild it (then retrain)')
        return vocab
    if source is None:
        raise FileNotFoundError(f'answer vocabulary file {file!r} not found and no source '
                                'annotation file given to build it from')
    if not osp.isfile(source):
        raise FileNotFoundError(f'answer vocabulary: source annotation file not found: '
                                f'{source!r}' + (f' (and no vocabulary file {file!r})'
                                                 if file else ''))
    train = [require_str(rec, 'answer', where) for where, rec in read_qa_records(source)]
    vocab = AnswerVocab.from_answers(train, top_k, dict(source=osp.basename(source),
                                                        source_sha256=_sha256_file(source)))
    if file is not None:
        vocab.save(file)
    return vocab
