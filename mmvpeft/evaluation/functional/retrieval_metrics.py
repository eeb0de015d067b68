"""Text-video retrieval metrics over a text x video similarity matrix.

Ranks are 1-based and ties are counted pessimistically: a tie with a wrong candidate ranks
the true item below it, so a constant similarity matrix scores the worst rank, not the best.

- text -> video (t2v): the rank of text ``i``'s video among all videos,
  ``1 + #{wrong videos v : sim[i, v] >= sim[i, true]}``.
- video -> text (v2t): a video may have several captions (MSVD: about 40), each a correct
  answer. A video's rank is the best rank among its captions, where each caption is ranked
  against the *wrong* texts only: ``1 + #{texts of other videos t : sim[t, v] >= s*}`` with
  ``s*`` the highest score of the video's own captions. (Other captions of the same video
  are also correct, so they never push it down.) R@K is then the fraction of videos with at
  least one caption in the top K, as in image-text retrieval on COCO. With one caption per
  video (MSR-VTT 1k-A) this is the usual diagonal definition.

R@K is in percent; MdR / MnR are the median / mean rank (lower is better). Videos that no
text describes are candidates for t2v but are left out of v2t.

Two v2t protocols (``protocol=``), which differ only when a video has several captions:

- ``'coco'`` (above): a video ranks its best caption among all *captions* of other videos.
- ``'clip4clip'``: the protocol behind CLIP4Clip's (and most later papers') published MSVD
  v2t figures. Each video's captions form a group; the score of group ``i`` for video
  ``j`` is ``G[i, j] = max over captions c of i of sim[c, j]``; video ``j`` then ranks its
  own group among the groups of all described videos:
  ``1 + #{i != j : G[i, j] >= G[j, j]}``. Candidates are caption groups (one per video),
  not captions, so R@K is usually higher than COCO-style. t2v is the same in both.
  DiDeMo's published figures are paragraph-to-video: the dataset joins a video's
  descriptions into one caption (:class:`DiDeMoRetrievalDataset`), so both protocols give
  the diagonal definition there.

CLIP4Clip breaks score ties by sort order; we count them pessimistically, so the two agree on
every matrix without exact ties.
"""
from math import comb
from typing import Dict, Sequence

import numpy as np
import torch

RECALL_KS = (1, 5, 10)
PROTOCOLS = ('coco', 'clip4clip')
# Rows compared at once: bounds the (rows, candidates) boolean to ~chunk * candidates.
_CHUNK = 1024


def _check(sim: torch.Tensor, text_to_video: torch.Tensor):
    sim = torch.as_tensor(sim)
    t2v = torch.as_tensor(text_to_video, dtype=torch.long, device=sim.device)
    if sim.ndim != 2 or sim.shape[0] == 0 or sim.shape[1] == 0:
        raise ValueError(f'sim must be a non-empty (num_texts, num_videos) matrix, got '
                         f'{tuple(sim.shape)}')
    if t2v.shape != (sim.shape[0], ):
        raise ValueError(f'text_to_video must be (num_texts,) = ({sim.shape[0]},), got '
                         f'{tuple(t2v.shape)}')
    if t2v.min() < 0 or t2v.max() >= sim.shape[1]:
        raise ValueError(f'text_to_video must index videos in [0, {sim.shape[1]}), got range '
                         f'[{int(t2v.min())}, {int(t2v.max())}]')
    if not torch.isfinite(sim).all():
        raise ValueError('sim has NaN or inf entries; ranks would be meaningless')
    return sim, t2v


def t2v_ranks(sim: torch.Tensor, text_to_video: torch.Tensor) -> torch.Tensor:
    """Pessimistic 1-based rank of each text's video.

    Args:
        sim: ``(num_texts, num_videos)`` similarities.
        text_to_video: ``(num_texts,)`` index of each text's video.

    Returns:
        torch.Tensor: int64 ``(num_texts,)``.
    """
    sim, t2v = _check(sim, text_to_video)
    ranks = []
    for s in range(0, sim.shape[0], _CHUNK):
        rows = sim[s:s + _CHUNK]
        true = rows.gather(1, t2v[s:s + _CHUNK, None])
        # Counts the true video itself (score >= itself): that is the "1 +".
        ranks.append((rows >= true).sum(1))
    return torch.cat(ranks)


def v2t_ranks(sim: torch.Tensor, text_to_video: torch.Tensor) -> torch.Tensor:
    """Pessimistic 1-based rank of each described video's best caption among wrong texts.

    Args:
        sim: ``(num_texts, num_videos)`` similarities.
        text_to_video: ``(num_texts,)`` index of each text's video.

    Returns:
        torch.Tensor: int64 ``(num_described_videos,)``, videos in index order, those without
        a caption left out.
    """
    sim, t2v = _check(sim, text_to_video)
    num_videos = sim.shape[1]
    # Best score of each video's own captions: scatter-max over the text axis.
    best = torch.full((num_videos, ), -torch.inf, dtype=sim.dtype, device=sim.device)
    best = best.scatter_reduce(0, t2v, sim.gather(1, t2v[:, None])[:, 0], reduce='amax')
    described = torch.zeros(num_videos, dtype=torch.bool, device=sim.device)
    described[t2v] = True
    cols = torch.nonzero(described)[:, 0]
    ranks = []
    for s in range(0, len(cols), _CHUNK):
        c = cols[s:s + _CHUNK]
        scores = sim[:, c].T  # (videos, texts)
        wrong = t2v[None, :] != c[:, None]
        ranks.append(1 + ((scores >= best[c, None]) & wrong).sum(1))
    return torch.cat(ranks)


def group_similarity(sim: torch.Tensor, text_to_video: torch.Tensor) -> torch.Tensor:
    """Best caption score of each video's caption group for every video.

    Args:
        sim: ``(num_texts, num_videos)`` similarities.
        text_to_video: ``(num_texts,)`` index of each text's video.

    Returns:
        torch.Tensor: ``(num_videos, num_videos)``, ``G[i, j]`` = max over the captions of
        video ``i`` of their score for video ``j``; ``-inf`` rows for videos without captions.
    """
    sim, t2v = _check(sim, text_to_video)
    num_videos = sim.shape[1]
    group = torch.full((num_videos, num_videos), -torch.inf, dtype=sim.dtype,
                       device=sim.device)
    index = t2v[:, None].expand(-1, num_videos)
    return group.scatter_reduce(0, index, sim, reduce='amax')


def v2t_ranks_clip4clip(sim: torch.Tensor, text_to_video: torch.Tensor) -> torch.Tensor:
    """CLIP4Clip's multi-caption v2t rank of each described video (pessimistic ties).

    Video ``j`` ranks its own caption group among the groups of all described videos by
    the group score :func:`group_similarity` ``G[:, j]``.

    Args:
        sim: ``(num_texts, num_videos)`` similarities.
        text_to_video: ``(num_texts,)`` index of each text's video.

    Returns:
        torch.Tensor: int64 ``(num_described_videos,)``, videos in index order.
    """
    group = group_similarity(sim, text_to_video)
    described = torch.zeros(group.shape[0], dtype=torch.bool, device=group.device)
    described[torch.as_tensor(text_to_video, dtype=torch.long, device=group.device)] = True
    cols = torch.nonzero(described)[:, 0]
    g = group[cols][:, cols]  # (groups, videos), both over the described videos
    own = g.diagonal()
    # ">= own" counts the own group too: that is the "1 +".
    return (g >= own[None, :]).sum(0)


def rank_summary(ranks: torch.Tensor, ks: Sequence[int] = RECALL_KS) -> Dict[str, float]:
    """``R@K`` (percent), ``MdR`` and ``MnR`` of 1-based ranks."""
    r = ranks.double().cpu().numpy()
    out = {f'R@{k}': float(100.0 * (r <= k).mean()) for k in ks}
    out['MdR'] = float(np.median(r))
    out['MnR'] = float(r.mean())
    return out


def chance_recall(num_candidates: int, num_correct: Sequence[int],
                  ks: Sequence[int] = RECALL_KS) -> Dict[str, float]:
    """Expected R@K (percent) of a uniformly random ranking.

    With ``N`` candidates of which ``m`` are correct, the best correct one is in the top
    ``K`` with probability ``1 - C(N - m, K) / C(N, K)`` (``K / N`` for ``m = 1``).

    Args:
        num_candidates: ``N``.
        num_correct: ``m`` for each query.
        ks: Recall cut-offs.
    """
    n = int(num_candidates)
    out = {}
    for k in ks:
        kk = min(k, n)
        probs = [1.0 - comb(n - m, kk) / comb(n, kk) for m in num_correct]
        out[f'R@{k}'] = 100.0 * float(np.mean(probs))
    return out


def retrieval_metrics(sim: torch.Tensor, text_to_video: torch.Tensor,
                      ks: Sequence[int] = RECALL_KS,
                      protocol: str = 'coco') -> Dict[str, float]:
    """Both directions' R@K, MdR and MnR, and ``rsum``.

    Args:
        sim: ``(num_texts, num_videos)`` similarities (e.g. cosine: text @ video.T).
        text_to_video: ``(num_texts,)`` long, index of the video each text describes.
        ks: Recall cut-offs.
        protocol: v2t protocol with several captions per video: ``'coco'`` (a video ranks
            its best caption among all captions) or ``'clip4clip'`` (a video ranks its
            caption group among all videos' groups; CLIP4Clip's MSVD figures). See the
            module docstring.

    Returns:
        dict: ``t2v/R@1``, ``t2v/R@5``, ``t2v/R@10``, ``t2v/MdR``, ``t2v/MnR``, the same
        for ``v2t/``, and ``rsum`` (sum of the six recalls).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f'protocol must be one of {PROTOCOLS}, got {protocol!r}')
    v2t = v2t_ranks if protocol == 'coco' else v2t_ranks_clip4clip
    out = {f't2v/{k}': v for k, v in rank_summary(t2v_ranks(sim, text_to_video), ks).items()}
    out.update({f'v2t/{k}': v for k, v in rank_summary(v2t(sim, text_to_video), ks).items()})
    out['rsum'] = sum(out[f'{d}/R@{k}'] for d in ('t2v', 'v2t') for k in ks)
    return out
