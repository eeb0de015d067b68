"""``--show-dir`` pictures for text-video retrieval, ranked over the whole test set with the
model's own embeddings (as :class:`~mmvpeft.evaluation.RetrievalMetric` ranks them): for a
caption, its top videos as rows of frames with their scores, the correct one framed in
green; for a video, its top captions with their scores, the correct ones in green."""
from typing import List, Tuple

import numpy as np
import torch

from mmvpeft.registry import METRICS
from .drawing import (GOOD, GREY, TEXT, WIDTH, ShowMetric, frame_strip, place, safe_name, stack,
                      text_block)


@METRICS.register_module()
class RetrievalVisualizer(ShowMetric):
    """Text-to-video pictures ``t2v_{k}_{vid}.png`` for the first caption of the first
    videos, and video-to-text pictures ``v2t_{k}_{vid}.png`` for the first videos; of
    ``show_num`` pictures, ``ceil(show_num / 2)`` are text-to-video.

    Reads ``vid``, ``video_embed (E,)``, ``text_embeds (C, E)``, ``captions`` (C str) and
    ``video_path`` from each data sample (one per video).

    Args:
        out_dir, show_num: see :class:`~mmvpeft.visualization.drawing.ShowMetric`.
        top_k: videos / captions listed per picture.
    """

    required = ('vid', 'video_embed', 'text_embeds', 'captions')

    def __init__(self, out_dir: str, show_num: int = 20, top_k: int = 5, **kwargs) -> None:
        super().__init__(out_dir, show_num, **kwargs)
        self.top_k = int(top_k)

    def keep_all(self) -> bool:
        return True

    def record(self, sample: dict) -> dict:
        texts = torch.as_tensor(sample['text_embeds']).detach().float().cpu()
        captions = sample['captions']
        captions = [captions] if isinstance(captions, str) else list(captions)
        texts = texts[None] if texts.ndim == 1 else texts
        if len(captions) != len(texts):
            raise ValueError(f'vid={sample["vid"]!r}: {len(captions)} captions but '
                             f'{len(texts)} text embeddings')
        return dict(vid=sample['vid'], captions=captions, text_embeds=texts,
                    video_embed=torch.as_tensor(sample['video_embed']).detach().float().cpu(),
                    video_path=sample.get('video_path'), frame_inds=sample.get('frame_inds'))

    def rankings(self, results: List[dict]) -> Tuple[List[dict], List[dict]]:
        """What the pictures show, ranked over all videos / captions of ``results``.

        Returns:
            ``(t2v, v2t)``. Each t2v entry: ``video`` (index into the de-duplicated
            videos), ``caption`` (its first caption), ``rank`` (1-based rank of the video for
            it), ``top`` ``[(video index, score)]`` best first (stable on ties). Each v2t
            entry: ``video``, ``rank`` (of its best caption), ``top`` ``[(caption index,
            score)]``. Also sets :attr:`videos`, :attr:`captions` and :attr:`owner` (the
            video index of each caption).
        """
        videos, seen = [], set()
        for r in results:  # the distributed sampler repeats some videos
            if r['vid'] not in seen:
                seen.add(r['vid'])
                videos.append(r)
        self.videos = videos
        self.owner = [i for i, v in enumerate(videos) for _ in v['captions']]
        self.captions = [c for v in videos for c in v['captions']]
        video_embeds = torch.stack([v['video_embed'] for v in videos])
        sim = torch.cat([v['text_embeds'] for v in videos]) @ video_embeds.T  # (texts, videos)
        described = [i for i, v in enumerate(videos) if v['captions']]
        n_t2v = (self.show_num + 1) // 2
        t2v, v2t = [], []
        for i in described[:n_t2v]:
            t = self.owner.index(i)  # the video's first caption
            scores, ranked = sim[t].sort(descending=True, stable=True)
            t2v.append(dict(video=i, caption=t, rank=int((ranked == i).nonzero()[0]) + 1,
                            top=list(zip(ranked[:self.top_k].tolist(),
                                         scores[:self.top_k].tolist()))))
        for i in described[:self.show_num - len(t2v)]:
            scores, ranked = sim[:, i].sort(descending=True, stable=True)
            own = [r for r, t in enumerate(ranked.tolist(), 1) if self.owner[t] == i]
            v2t.append(dict(video=i, rank=own[0], top=list(zip(ranked[:self.top_k].tolist(),
                                                                scores[:self.top_k].tolist()))))
        return t2v, v2t

    def draw(self, results: List[dict]) -> List[Tuple[str, np.ndarray]]:
        t2v, v2t = self.rankings(results)
        videos, captions, owner = self.videos, self.captions, self.owner
        out = []
        for n, hit in enumerate(t2v):
            i = hit['video']
            parts = [text_block([(f'query: "{captions[hit["caption"]]}"', TEXT),
                                 (f'correct video {videos[i]["vid"]} ranked {hit["rank"]} of '
                                  f'{len(videos)}', GOOD if hit['rank'] == 1 else GREY)])]
            for r, (j, score) in enumerate(hit['top'], 1):
                mark = '  (correct)' if j == i else ''
                parts.append(text_block([(f'{r}. {videos[j]["vid"]}  score {score:.3f}{mark}',
                                          GOOD if j == i else TEXT)]))
                parts.append(place(frame_strip(videos[j]['video_path'], height=72,
                                               frame_inds=videos[j]['frame_inds']),
                                   border=GOOD if j == i else None))
            out.append((f't2v_{n:03d}_{safe_name(videos[i]["vid"])}.png', stack(parts, WIDTH)))
        for n, hit in enumerate(v2t):
            i = hit['video']
            lines = [(f'video {videos[i]["vid"]}: its best caption ranked {hit["rank"]} of '
                      f'{len(captions)}', GOOD if hit['rank'] == 1 else GREY)]
            for r, (t, score) in enumerate(hit['top'], 1):
                mark = '  (correct)' if owner[t] == i else ''
                lines.append((f'{r}. "{captions[t]}"  score {score:.3f}{mark}',
                              GOOD if owner[t] == i else TEXT))
            img = stack([place(frame_strip(videos[i]['video_path'],
                                           frame_inds=videos[i]['frame_inds'])),
                         text_block(lines)])
            out.append((f'v2t_{n:03d}_{safe_name(videos[i]["vid"])}.png', img))
        return out
