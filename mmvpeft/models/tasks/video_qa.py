"""Open-ended video QA as answer classification over PEFT-adapted CLIP towers.

The model builds from its config alone: the head's size is ``num_answers``, and the answer
strings (needed only to turn predicted ids into words) come from a vocabulary *file* written
once by ``tools/build_answer_vocab.py`` or by the dataset on first use, never from training
annotations. Training labels are the datasets' ``answer_label``.
"""
import hashlib
import json
import os.path as osp
import warnings
from typing import List, Optional, Sequence, Tuple

import torch

from mmvpeft.models.encoders.temporal_pool import masked_mean
from mmvpeft.registry import MODELS
from .base import VideoLanguageModel


@MODELS.register_module()
class VideoQA(VideoLanguageModel):
    """Video question answering: frames and question through the CLIP towers, a small
    cross-modal transformer, and a classifier over the top-K training answers.

    ``inputs`` (``video_query_collate`` over ``PackQAInputs``): ``imgs (B, T, K, 3, H, W)``
    with ``video_mask (B, T)``, question ``text_tokens (B, L)`` with ``text_mask (B, L)``.
    ``data_samples``: dicts with ``answer_label`` (int, -1 outside the vocabulary; the
    dataset's label of ``answer``) in training.

    1. Video: one projected CLIP embedding per frame, ``(B, T, E)``, from the image tower
       with its PEFT methods (e.g. token mixing in the last block, which then trains).
    2. Question: per-token CLIP text features ``(B, L, W)`` and the pooled EOT embedding
       ``(B, E)``.
    3. Fusion (``CrossModalEncoder``, joint by default): frames and words attend to each
       other; the fused frames are averaged over valid frames, ``(B, D)``.
    4. Head: ``[fused video; question embedding]`` -> K logits; cross-entropy against each
       sample's ``answer_label`` (-1, outside the vocabulary, is ignored), logged as
       ``loss_answer``.

    The vocabulary (when known) is read once: at build if its file exists, otherwise on the
    first ``loss``/``predict`` call (the dataset writes the file when the runner builds it,
    after the model). Its sha256 digest is checked against the file's own record, stored in
    the head (so a checkpoint of another vocabulary fails to load) and its size against
    ``num_answers``; a sample whose ``answer_label`` names another answer than its
    ``answer`` (a dataset built with another vocabulary) is an error. ``predict`` adds
    ``pred_answer`` (str), ``pred_label``, and the ``topk`` best ``topk_answers`` with their
    softmax ``topk_scores``.

    Args:
        video_backbone (dict): ``CLIPVisionBackbone`` with ``peft=[...]``.
        text_backbone (dict): ``CLIPTextBackbone``.
        num_answers (int): Size K of the answer classifier. Optional when ``answer_vocab``
            gives ``answers``, an existing ``file``, or (older configs) ``top_k``.
        answer_vocab (dict, optional): Where the answer strings are: ``answers=[...]`` in
            label order, or ``file=`` (a JSON file of
            :mod:`mmvpeft.datasets.qa.answer_vocab`, joined to ``data_root`` when relative).
            The datasets' ``source`` is accepted and never read (the model never reads
            annotations); ``top_k`` sizes the head only in older configs without
            ``num_answers`` (deprecated).
        fusion (dict): ``CrossModalEncoder`` config; ``video_dim``/``text_dim`` default to
            the towers' output sizes.
        head (dict): ``AnswerClassifierHead`` config; ``in_dim`` and ``num_answers`` are
            filled in.
        use_question_embedding (bool): Concatenate the pooled question embedding to the
            fused video feature.
        topk (int): Answers kept per question in ``predict``.
        pvla_loss, **kwargs: see :class:`VideoLanguageModel`.
    """

    #: The ``tools/test.py --dump`` writer of this task's predictions.
    dump_metric = 'QAAnswerDumper'

    def __init__(self,
                 video_backbone: dict,
                 text_backbone: dict,
                 num_answers: Optional[int] = None,
                 answer_vocab: Optional[dict] = None,
                 fusion: Optional[dict] = None,
                 head: Optional[dict] = None,
                 use_question_embedding: bool = True,
                 topk: int = 5,
                 pvla_loss: Optional[dict] = None,
                 **kwargs):
        super().__init__(video_backbone=video_backbone, text_backbone=text_backbone,
                         pvla_loss=pvla_loss, **kwargs)
        self.answers, self._vocab_file, num_answers = self._vocab_from_config(
            answer_vocab, num_answers)
        fusion = dict(dict(type='CrossModalEncoder', dim=256, num_heads=4,
                           num_fusion_layers=2, fusion='joint'), **(fusion or {}))
        fusion.setdefault('video_dim', self.video_backbone.embed_dim)
        fusion.setdefault('text_dim', self.text_backbone.width)
        self.fusion = MODELS.build(fusion)
        self.use_question_embedding = use_question_embedding
        in_dim = self.fusion.dim + (self.text_backbone.embed_dim if use_question_embedding
                                    else 0)
        head = dict(dict(type='AnswerClassifierHead'), **(head or {}))
        head.update(in_dim=in_dim, num_answers=num_answers,
                    vocab_digest=None if self.answers is None else _digest(self.answers))
        self.head = MODELS.build(head)
        self.topk = max(1, min(int(topk), num_answers))

    # -- vocabulary -----------------------------------------------------------------------

    @staticmethod
    def _vocab_from_config(answer_vocab: Optional[dict], num_answers: Optional[int]):
        """``(answers or None, vocabulary file to read later or None, num_answers)``."""
        vocab = dict(answer_vocab or {})
        unknown = set(vocab) - {'answers', 'file', 'data_root', 'source', 'top_k'}
        if unknown:
            raise TypeError(f'VideoQA: unknown answer_vocab keys {sorted(unknown)}; expected '
                            'answers, file, data_root (source, top_k are datasets\' keys)')
        answers, file = vocab.get('answers'), vocab.get('file')
        if file is not None and vocab.get('data_root') and not osp.isabs(file):
            file = osp.join(vocab['data_root'], file)
        if answers is None and file is not None and osp.isfile(file):
            answers, file = _read_vocab_file(file), None
        if answers is not None:
            answers = [str(a) for a in answers]
            if not answers or len(set(answers)) != len(answers):
                raise ValueError('VideoQA: answer_vocab.answers must be unique and non-empty')
            if num_answers is not None and int(num_answers) != len(answers):
                raise ValueError(f'VideoQA: num_answers={num_answers} but the answer '
                                 f'vocabulary has {len(answers)} answers; set '
                                 f'model.num_answers={len(answers)}')
            num_answers = len(answers)
        if num_answers is None:
            if vocab.get('top_k') is None:
                raise ValueError('VideoQA needs num_answers (the answer classifier size) or an '
                                 'answer_vocab with answers=[...] or an existing file')
            # Older configs: the head had top_k outputs whenever the training set had that
            # many distinct answers; the vocabulary file, once read, must agree.
            num_answers = int(vocab['top_k'])
            warnings.warn('VideoQA: answer_vocab.top_k as the head size is deprecated; set '
                          f'model.num_answers={num_answers}', DeprecationWarning)
        if int(num_answers) < 1:
            raise ValueError(f'VideoQA: num_answers must be >= 1, got {num_answers}')
        return answers, file, int(num_answers)

    def _require_vocab(self, needed: bool) -> Optional[List[str]]:
        """The answer strings, reading the vocabulary file the first time it is there."""
        if self.answers is None and self._vocab_file is not None \
                and osp.isfile(self._vocab_file):
            answers = _read_vocab_file(self._vocab_file)
            if len(answers) != self.head.num_answers:
                raise ValueError(f'answer vocabulary {self._vocab_file} has {len(answers)} '
                                 f'answers, the model\'s head {self.head.num_answers}; set '
                                 f'model.num_answers={len(answers)}')
            digest = torch.frombuffer(bytearray(_digest(answers)), dtype=torch.uint8)
            mine = self.head.vocab_digest
            if bool(mine.any()) and not torch.equal(mine.cpu(), digest):
                raise ValueError(f'answer vocabulary {self._vocab_file} is not the one the '
                                 'loaded weights were trained with (head.vocab_digest '
                                 'differs)')
            mine.copy_(digest.to(mine.device))
            self.answers, self._vocab_file = answers, None
        if needed and self.answers is None:
            raise RuntimeError(
                'VideoQA has no answer strings to name its predictions: give '
                'answer_vocab=dict(file=...) (written by tools/build_answer_vocab.py or the '
                'dataset) or answer_vocab=dict(answers=[...])'
                + (f'; {self._vocab_file} does not exist yet' if self._vocab_file else ''))
        return self.answers

    @property
    def task_loss_keys(self) -> Tuple[str, ...]:
        return ('loss_answer', )

    def logits(self, inputs: dict) -> dict:
        """Answer logits ``(B, K)`` and the tower outputs (``video``, ``text``)."""
        video, text = self.encode_video(inputs), self.encode_text(inputs)
        if 'pooled' not in text and self.use_question_embedding:
            raise KeyError('use_question_embedding needs a text_backbone (pooled embedding)')
        vmask = video['mask']
        if vmask is None:
            vmask = torch.ones(video['feats'].shape[:2], dtype=torch.bool,
                               device=video['feats'].device)
        tmask = text['mask'].bool()
        fused = self.fusion(video['feats'].float(), vmask.bool(), text['feats'].float(),
                            tmask)['feats']
        feat = masked_mean(fused, vmask.bool())
        if self.use_question_embedding:
            feat = torch.cat([feat, text['pooled'].float()], dim=-1)
        return dict(logits=self.head(feat), video=video, text=text, video_mask=vmask)

    def labels(self, data_samples: List[dict], device=None) -> torch.Tensor:
        """(B,) each sample's ``answer_label`` (the dataset's), -1 outside the vocabulary.

        When the model knows its answer strings, a label that names another answer than the
        sample's (already normalised) ``answer`` is an error: the dataset was built with
        another vocabulary.
        """
        answers = self._require_vocab(needed=False)
        labels = []
        for s in data_samples:
            if s.get('answer_label') is None:
                raise KeyError(f'VideoQA needs "answer_label" in each training sample '
                               f'(qid={s.get("qid")!r}): give the dataset the answer_vocab')
            label = int(s['answer_label'])
            if not -1 <= label < self.head.num_answers:
                raise ValueError(f'qid={s.get("qid")!r}: answer_label {label} outside '
                                 f'[-1, {self.head.num_answers})')
            if answers is not None and label >= 0 and 'answer' in s \
                    and answers[label] != s['answer']:
                raise ValueError(
                    f'qid={s.get("qid")!r}: the dataset labels answer {s["answer"]!r} as '
                    f'{label}, which is {answers[label]!r} in the model\'s vocabulary: the '
                    'dataset and the model use different answer vocabularies; give both '
                    'the same answer_vocab file')
            labels.append(label)
        return torch.tensor(labels, dtype=torch.long, device=device)

    def forward(self, inputs: dict, data_samples: Optional[List[dict]] = None,
                mode: str = 'tensor'):
        """MMEngine entry: ``mode`` is ``'loss'``, ``'predict'`` or ``'tensor'``."""
        out = self.logits(inputs)
        logits = out['logits']
        if mode == 'tensor':
            return dict(logits=logits)
        if mode == 'loss':
            losses = dict(loss_answer=self.head.loss(
                logits, self.labels(data_samples, logits.device)))
            if self.pvla_loss is not None:
                losses['loss_pvla'] = self.pvla(
                    out['video']['aux'].get('read_states'),
                    out['text']['aux'].get('read_states'), out['video_mask'],
                    inputs['text_mask'])
            return losses
        if mode == 'predict':
            vocab = self._require_vocab(needed=True)
            probs = logits.detach().float().softmax(-1)
            scores, ids = probs.topk(self.topk, dim=-1)
            preds = []
            for i, sample in enumerate(data_samples):
                answers = [vocab[j] for j in ids[i].tolist()]
                preds.append(dict(sample, pred_answer=answers[0], pred_label=int(ids[i, 0]),
                                  topk_answers=answers, topk_scores=scores[i].tolist()))
            return preds
        raise ValueError(f'unknown mode {mode!r}; expected "loss", "predict" or "tensor"')


def _digest(answers: Sequence[str]) -> bytes:
    """sha256 of the answers in label order (as ``AnswerVocab.digest``)."""
    return hashlib.sha256('\n'.join(answers).encode('utf-8')).digest()


def _read_vocab_file(path: str) -> List[str]:
    """The answers of a vocabulary JSON file, checked against the digest it records."""
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'answer vocabulary {path}: invalid JSON ({e})') from e
    answers = data.get('answers') if isinstance(data, dict) else None
    if not isinstance(answers, list) or not answers \
            or not all(isinstance(a, str) and a for a in answers):
        raise ValueError(f'answer vocabulary {path}: expected an object with a non-empty list '
                         'of strings "answers"')
    if len(set(answers)) != len(answers):
        raise ValueError(f'answer vocabulary {path}: duplicate answers')
    recorded = data.get('sha256')  # older files carry none
    if recorded is not None and recorded != _digest(answers).hex():
        raise ValueError(f'answer vocabulary {path}: the answers do not match the recorded '
                         f'sha256 {recorded}; the file was edited or is truncated')
    return answers
