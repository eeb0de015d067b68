"""Text-video retrieval metric (R@1/5/10, MdR, MnR both directions) for MMEngine evaluators."""
from typing import Any, Dict, List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmvpeft.evaluation.functional.retrieval_metrics import (PROTOCOLS, RECALL_KS,
                                                             chance_recall, retrieval_metrics)
from mmvpeft.registry import METRICS


@METRICS.register_module()
class RetrievalMetric(BaseMetric):
    """Retrieval over the whole test set from per-video embeddings.

    Each item of ``data_samples`` given to :meth:`process` (what the retrieval model's
    ``predict`` returns, one per video) is a dict::

        {'vid': str, 'video_embed': Tensor (E,), 'text_embeds': Tensor (C, E),
         'caption_ids': [C ids]}

    with L2-normalised embeddings. :meth:`compute_metrics` stacks all videos
    ``V (num_videos, E)`` and all captions ``X (num_texts, E)``, computes
    ``sim = X @ V.T`` and ranks as in
    :func:`~mmvpeft.evaluation.functional.retrieval_metrics.retrieval_metrics` (pessimistic
    ties; v2t counts a video as found when its best caption is within K). Videos are
    de-duplicated by ``vid`` (the distributed sampler repeats some to even out ranks).

    Returned keys: ``t2v/R@1``, ``t2v/R@5``, ``t2v/R@10``, ``t2v/MdR``, ``t2v/MnR``, the same
    for ``v2t/``, ``rsum`` and the chance level of a random ranking, ``chance/t2v/R@K`` and
    ``chance/v2t/R@K`` (R@K in percent).

    Args:
        ks: Recall cut-offs.
        protocol: v2t protocol when videos have several captions: ``'coco'`` (a video
            ranks its best caption among all captions) or ``'clip4clip'`` (a video ranks
            its caption group among the videos' groups, as CLIP4Clip's published MSVD
            figures do). Name it beside every v2t figure; t2v is the same in both.
        collect_device: ``'cpu'`` or ``'gpu'``, for gathering results across ranks.
        prefix: Prefix of the metric names, e.g. ``'retrieval'``.
    """

    default_prefix: Optional[str] = None

    def __init__(self,
                 ks: Sequence[int] = RECALL_KS,
                 protocol: str = 'coco',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if protocol not in PROTOCOLS:
            raise ValueError(f'{type(self).__name__}: protocol must be one of {PROTOCOLS}, '
                             f'got {protocol!r}')
        self.protocol = protocol
        self.ks = tuple(int(k) for k in ks)
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f'ks must be positive, got {ks}')

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep each video's embeddings (float32, CPU) and caption ids."""
        for sample in data_samples:
            for key in ('vid', 'video_embed', 'text_embeds', 'caption_ids'):
                if key not in sample:
                    raise KeyError(f'{type(self).__name__} needs "{key}" in each data sample '
                                   f'(vid={sample.get("vid")!r})')
            video = torch.as_tensor(sample['video_embed']).detach().float().cpu()
            texts = torch.as_tensor(sample['text_embeds']).detach().float().cpu()
            if texts.ndim == 1:
                texts = texts[None]
            ids = list(sample['caption_ids'])
            if video.ndim != 1 or texts.ndim != 2 or texts.shape[1] != video.shape[0] \
                    or len(ids) != texts.shape[0]:
                raise ValueError(f'vid={sample["vid"]!r}: need video_embed (E,), text_embeds '
                                 f'(C, E) and C caption_ids, got {tuple(video.shape)}, '
                                 f'{tuple(texts.shape)}, {len(ids)}')
            self.results.append(dict(vid=sample['vid'], video_embed=video, text_embeds=texts,
                                     caption_ids=ids))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Metrics over the gathered ``results`` (rank 0 only)."""
        videos, seen = [], set()
        for r in results:
            if r['vid'] not in seen:
                seen.add(r['vid'])
                videos.append(r)
        if len(videos) < len(results):
            print_log(f'{type(self).__name__}: dropped {len(results) - len(videos)} repeated '
                      'video(s)', logger='current', level=10)
        video_embeds = torch.stack([v['video_embed'] for v in videos])
        text_embeds = torch.cat([v['text_embeds'] for v in videos])
        counts = [len(v['caption_ids']) for v in videos]
        text_to_video = torch.repeat_interleave(torch.arange(len(videos)),
                                                torch.tensor(counts))
        sim = text_embeds @ video_embeds.T
        metrics = retrieval_metrics(sim, text_to_video, self.ks, protocol=self.protocol)
        for k, v in chance_recall(len(videos), [1] * len(text_embeds), self.ks).items():
            metrics[f'chance/t2v/{k}'] = v
        # Like v2t itself, the chance level leaves out videos without a caption; under
        # 'clip4clip' the candidates are the described videos' groups, one correct each.
        described = [m for m in counts if m]
        if self.protocol == 'clip4clip':
            v2t_chance = chance_recall(len(described), [1] * len(described), self.ks)
        else:
            v2t_chance = chance_recall(len(text_embeds), described, self.ks)
        for k, v in v2t_chance.items():
            metrics[f'chance/v2t/{k}'] = v
        return metrics
