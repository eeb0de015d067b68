"""Open-ended video QA as answer classification over PETL-adapted CLIP towers."""
from typing import List, Optional, Tuple

import torch

from mmvpeft.datasets.qa.answer_vocab import build_answer_vocab
from mmvpeft.models.encoders.temporal_pool import masked_mean
from mmvpeft.registry import MODELS
from .base import VideoLanguageModel


@MODELS.register_module()
class VideoQA(VideoLanguageModel):
    """Video question answering: frames and question through the CLIP towers, a small
    cross-modal transformer, and a classifier over the top-K training answers.

    ``inputs`` (``video_query_collate`` over ``PackQAInputs``): ``imgs (B, T, K, 3, H, W)``
    with ``video_mask (B, T)``, question ``text_tokens (B, L)`` with
    ``text_mask (B, L)``. ``data_samples``: dicts with ``answer`` (str) in training.

    1. Video: one projected CLIP embedding per frame, ``(B, T, E)``, from the image tower
       with its PETL methods (e.g. token mixing in the last block, which then trains).
    2. Question: per-token CLIP text features ``(B, L, W)`` and the pooled EOT embedding
       ``(B, E)``.
    3. Fusion (``CrossModalEncoder``, joint by default): frames and words attend to each
       other; the fused frames are averaged over valid frames, ``(B, D)``.
    4. Head: ``[fused video; question embedding]`` -> K logits; cross-entropy against the
       label of ``answer`` in the model's own vocabulary (answers outside it are ignored),
       logged as ``loss_answer``.

    The model maps answers to labels itself, with the vocabulary it was built with, so its
    labels can never disagree with its output ids; a dataset's ``answer_label`` (when
    present) is checked against them. ``predict`` adds ``pred_answer`` (str),
    ``pred_label``, and the ``topk`` best ``topk_answers`` with their softmax
    ``topk_scores``.

    Args:
        video_backbone (dict): ``CLIPVisionBackbone`` with ``peft=[...]``.
        text_backbone (dict): ``CLIPTextBackbone``.
        answer_vocab (dict): Arguments of :func:`~mmvpeft.datasets.qa.build_answer_vocab`
            (``source``/``top_k``/``file`` with an optional ``data_root``, or ``answers``);
            the datasets take the same dict.
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
                 answer_vocab: dict,
                 fusion: Optional[dict] = None,
                 head: Optional[dict] = None,
                 use_question_embedding: bool = True,
                 topk: int = 5,
                 pvla_loss: Optional[dict] = None,
                 **kwargs):
        super().__init__(video_backbone=video_backbone, text_backbone=text_backbone,
                         pvla_loss=pvla_loss, **kwargs)
        self.vocab = build_answer_vocab(**answer_vocab)
        fusion = dict(dict(type='CrossModalEncoder', dim=256, num_heads=4,
                           num_fusion_layers=2, fusion='joint'), **(fusion or {}))
        fusion.setdefault('video_dim', self.video_backbone.embed_dim)
        fusion.setdefault('text_dim', self.text_backbone.width)
        self.fusion = MODELS.build(fusion)
        self.use_question_embedding = use_question_embedding
        in_dim = self.fusion.dim + (self.text_backbone.embed_dim if use_question_embedding
                                    else 0)
        head = dict(dict(type='AnswerClassifierHead'), **(head or {}))
        head.update(in_dim=in_dim, num_answers=len(self.vocab), vocab_digest=self.vocab.digest)
        self.head = MODELS.build(head)
        self.topk = max(1, min(int(topk), len(self.vocab)))

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
        """(B,) label of each sample's ``answer`` in the model's vocabulary, -1 outside."""
        labels = []
        for s in data_samples:
            if 'answer' not in s:
                raise KeyError(f'VideoQA needs "answer" in each training sample '
                               f'(qid={s.get("qid")!r})')
            label = self.vocab.index(s['answer'])
            if s.get('answer_label') is not None and int(s['answer_label']) != label:
                raise ValueError(
                    f'qid={s.get("qid")!r}: the dataset labels answer {s["answer"]!r} as '
                    f'{int(s["answer_label"])}, the model as {label}: the dataset and the '
                    'model use different answer vocabularies; give both the same '
                    'answer_vocab')
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
            probs = logits.detach().float().softmax(-1)
            scores, ids = probs.topk(self.topk, dim=-1)
            preds = []
            for i, sample in enumerate(data_samples):
                answers = [self.vocab.answers[j] for j in ids[i].tolist()]
                preds.append(dict(sample, pred_answer=answers[0], pred_label=int(ids[i, 0]),
                                  topk_answers=answers, topk_scores=scores[i].tolist()))
            return preds
        raise ValueError(f'unknown mode {mode!r}; expected "loss", "predict" or "tensor"')
