"""Base open-ended video QA dataset and the generic JSON-lines layout.

A QA set is a list of questions about videos. Layout readers (:mod:`.msrvtt_qa`,
:mod:`.synthetic`) only turn their files into that list by overriding
:meth:`VideoQADataset.load_questions`; this class checks the records, resolves video paths
and labels the answers.

Every item carries ``qid`` (unique), ``vid``, ``question``, ``answer`` (the normalised
ground-truth string), ``question_type`` and ``video_path`` (or ``frame_dir``), so a
classifier and a text generator can both train on it; with ``answer_vocab`` also
``answer_label`` (the answer's id, -1 outside the vocabulary).

Generic layout (your own data), one JSON object a line::

    {"qid": "q1", "vid": "v0001", "question": "what is the man doing?", "answer": "cooking",
     "video": "v0001.mp4", "question_type": "what"}

``video`` is optional (default ``{vid}{video_ext}``, relative to ``video_dir``);
``question_type`` is optional (default: the question's first word).
"""
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Union

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from mmvpeft.evaluation.functional.qa_metrics import normalize_answer, question_type
from mmvpeft.registry import DATASETS
from ..base import (AnnotationError, DataRootMixin, SkipCorruptMixin, TextLengthMixin,
                    VideoFilesMixin, join_root)
from ..identity import IdTypes
from ..low_resource import LowResourceMixin
from .answer_vocab import AnswerVocab, build_answer_vocab
from .records import read_qa_records, require_str


@DATASETS.register_module()
class VideoQADataset(TextLengthMixin, LowResourceMixin, VideoFilesMixin, DataRootMixin,
                     SkipCorruptMixin, BaseDataset):
    """Open-ended video QA; reads the generic JSON-lines layout (module docstring).

    ``data_root`` is the one location knob: ``ann_file``, ``video_dir``, ``frame_dir`` and
    the vocabulary's ``source``/``file`` given as relative paths are joined to it.

    Args:
        ann_file: Annotation file.
        data_root: Folder the relative paths are relative to.
        video_dir: Folder of the videos (``video_path = video_dir/{video}``).
        video_ext: Extension of ``{vid}{video_ext}`` when a record names no file.
        frame_dir: Folder of extracted frames instead (``frame_dir/{vid}``).
        answer_vocab: Arguments of
            :func:`~mmvpeft.datasets.qa.answer_vocab.build_answer_vocab` (``source``,
            ``top_k``, ``file``, or ``answers``); adds ``answer_label``. Give the model the
            same dict.
        drop_oov: Drop questions whose answer is outside the vocabulary (logged with their
            count). None (default): in training only. Test questions with such answers
            stay and count as wrong.
        pipeline: Transforms, e.g. ``LoadVideoFrames``, ``VideoResize``,
            ``VideoCenterCrop``, ``FormatVideo``, ``CLIPTokenize(key='question')``,
            ``PackQAInputs``.
        check_files: Check at build time that every video file (frame folder) exists.
        skip_corrupt: In training, skip an item whose video cannot be decoded.
        indices: Optional subset.
        train_subset: Low-resource training, e.g. ``dict(fraction=0.1, seed=0)`` or
            ``dict(count=500)``: a seeded subset of the questions stratified by video,
            recorded by qid (:mod:`mmvpeft.datasets.low_resource`).
        test_mode: Evaluation (keeps out-of-vocabulary questions).
        **kwargs: Passed to ``mmengine.dataset.BaseDataset``.

    Raises:
        AnnotationError: a malformed record; the message names the file, the line or index,
            the field and the qid.
    """

    ident_key = 'qid'

    def __init__(self,
                 ann_file: str = '',
                 data_root: str = '',
                 video_dir: Optional[str] = None,
                 video_ext: Optional[str] = '.mp4',
                 frame_dir: Optional[str] = None,
                 answer_vocab: Optional[dict] = None,
                 drop_oov: Optional[bool] = None,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 check_files: bool = True,
                 skip_corrupt: bool = False,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 test_mode: bool = False,
                 max_refetch: int = 100,
                 **kwargs) -> None:
        self.video_dir = join_root(data_root, video_dir)
        self.frame_dir = join_root(data_root, frame_dir)
        self.video_ext = video_ext
        self.check_files = check_files
        self.skip_corrupt = skip_corrupt
        self.vocab: Optional[AnswerVocab] = None
        if answer_vocab is not None:
            self.vocab = build_answer_vocab(**dict(answer_vocab, data_root=data_root))
        self.drop_oov = (not test_mode) if drop_oov is None else bool(drop_oov)
        super().__init__(ann_file=ann_file, data_root=data_root, pipeline=list(pipeline),
                         indices=indices, test_mode=test_mode, max_refetch=max_refetch,
                         **kwargs)

    # -- layout -------------------------------------------------------------------------

    def vid_of(self, value, where: str, qid) -> str:
        """The video id of a record's ``vid`` field; subclasses map their ids here."""
        if not isinstance(value, (str, int)) or isinstance(value, bool) or value == '':
            raise AnnotationError(f'{where}: field "vid" must be a non-empty str or int, got '
                                  f'{value!r} (qid={qid!r})')
        return str(value)

    def load_questions(self) -> List[Dict]:
        """``[{'qid', 'vid', 'question', 'answer', 'where', 'video'?, 'question_type'?}]``.

        This one reads the generic layout (``qid``/``vid``; MSRVTT-QA's ``id``/``video_id``
        are accepted too).
        """
        ann_file = self._require_file(self.ann_file, 'ann_file')
        questions = []
        for where, rec in read_qa_records(ann_file):
            qid = rec.get('qid', rec.get('id'))
            if not isinstance(qid, (str, int)) or isinstance(qid, bool) or qid == '':
                raise AnnotationError(f'{where}: field "qid" (or "id") must be a non-empty str '
                                      f'or int, got {qid!r}')
            key = 'vid' if 'vid' in rec else 'video_id'
            if key not in rec:
                raise AnnotationError(f'{where}: missing field "vid" (or "video_id") '
                                      f'(qid={qid!r})')
            q = dict(qid=qid, vid=self.vid_of(rec[key], where, qid), where=where)
            for opt in ('question', 'answer', 'video', 'question_type'):
                if rec.get(opt) is not None:
                    q[opt] = rec[opt]
            questions.append(q)
        return questions

    # -- shared logic -------------------------------------------------------------------

    def load_data_list(self) -> List[dict]:
        questions = self.load_questions()
        if not questions:
            raise AnnotationError(f'{type(self).__name__}: no question in {self.ann_file}')
        seen, missing, data_list, dropped = {}, {}, [], 0
        id_types = IdTypes(self.ann_file, 'qid')
        for q in questions:
            where, qid = q['where'], q['qid']
            ident = f' (qid={qid!r}, vid={q["vid"]!r})'
            # Typed: 7 and "7" are not duplicates but an error of their own (IdTypes).
            if (type(qid), qid) in seen:
                raise AnnotationError(f'{where}: duplicate qid {qid!r} (first at '
                                      f'{seen[type(qid), qid]})')
            id_types.check(qid, where)
            seen[type(qid), qid] = where
            question = require_str(q, 'question', where, ident)
            answer = normalize_answer(require_str(q, 'answer', where, ident))
            if not answer:
                raise AnnotationError(f'{where}: field "answer" is empty after normalisation '
                                      f'({q["answer"]!r}){ident}')
            if q.get('video') is not None and (not isinstance(q['video'], str)
                                               or not q['video']):
                raise AnnotationError(f'{where}: field "video" must be a file name, got '
                                      f'{q["video"]!r}{ident}')
            qtype = q.get('question_type')
            item = dict(qid=qid, vid=q['vid'], question=question, answer=answer,
                        question_type=str(qtype) if qtype is not None
                        else question_type(question))
            if self.vocab is not None:
                item['answer_label'] = self.vocab.index(answer)
                if item['answer_label'] < 0 and self.drop_oov:
                    dropped += 1
                    continue
            paths = self.video_paths(q)
            if self.check_files:
                for key, path in paths.items():
                    exists = osp.isfile(path) if key == 'video_path' else osp.isdir(path)
                    if not exists:
                        missing.setdefault(path, f'{path} (first needed by {where}, '
                                                 f'qid={qid!r})')
            item.update(paths)
            data_list.append(item)
        if missing:
            kind = 'video file' if self.video_dir is not None else 'frame folder'
            raise FileNotFoundError(
                f'{type(self).__name__}: {len(missing)} {kind}(s) not found, e.g. '
                f'{"; ".join(list(missing.values())[:5])} (set video_dir/data_root, or '
                'check_files=False to fail only when the item is loaded)')
        if dropped:
            print_log(f'{type(self).__name__}: dropped {dropped} of {len(questions)} questions '
                      f'whose answer is outside the {len(self.vocab)}-answer vocabulary',
                      logger='current')
        if not data_list:
            raise AnnotationError(f'{type(self).__name__}: no question left in '
                                  f'{self.ann_file} (all answers outside the vocabulary?)')
        return data_list
