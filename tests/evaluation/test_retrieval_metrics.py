"""Retrieval ranks and metrics on hand-computed similarity matrices, and RetrievalMetric."""
import itertools
from math import comb

import numpy as np
import pytest
import torch

import mmvpeft.evaluation.functional.retrieval_metrics as rm
from mmvpeft.evaluation import RetrievalMetric
from mmvpeft.registry import METRICS


def test_t2v_and_v2t_with_ties_one_caption_per_video():
    sim = torch.tensor([[0.9, 0.9, 0.1],   # text 0 -> video 0, tied with video 1: rank 2
                        [0.2, 0.5, 0.5],   # text 1 -> video 1, tied with video 2: rank 2
                        [0.3, 0.1, 0.8]])  # text 2 -> video 2: rank 1
    t2v = torch.tensor([0, 1, 2])
    assert rm.t2v_ranks(sim, t2v).tolist() == [2, 2, 1]
    # Columns: video 1's caption scores 0.5 and text 0 scores 0.9 >= 0.5: rank 2.
    assert rm.v2t_ranks(sim, t2v).tolist() == [1, 2, 1]
    m = rm.retrieval_metrics(sim, t2v)
    assert m['t2v/R@1'] == pytest.approx(100 / 3) and m['t2v/R@5'] == 100
    assert m['t2v/MdR'] == 2 and m['t2v/MnR'] == pytest.approx(5 / 3)
    assert m['v2t/R@1'] == pytest.approx(200 / 3) and m['v2t/MdR'] == 1
    assert m['v2t/MnR'] == pytest.approx(4 / 3)
    assert m['rsum'] == pytest.approx(100 / 3 + 200 / 3 + 4 * 100)
    assert set(m) == {f'{d}/{k}' for d in ('t2v', 'v2t')
                      for k in ('R@1', 'R@5', 'R@10', 'MdR', 'MnR')} | {'rsum'}


def test_constant_similarity_is_the_worst_rank():
    sim = torch.zeros(4, 4)
    t2v = torch.arange(4)
    assert rm.t2v_ranks(sim, t2v).tolist() == [4] * 4
    assert rm.v2t_ranks(sim, t2v).tolist() == [4] * 4


def test_several_captions_per_video():
    # Videos: v0 has texts 0-2, v1 has texts 3-4, v2 has none (a distractor only).
    sim = torch.tensor([[0.5, 0.6, 0.1],   # -> v0; v1 scores higher: rank 2
                        [0.9, 0.5, 0.9],   # -> v0; tie with v2: rank 2
                        [0.9, 0.1, 0.0],   # -> v0: rank 1
                        [0.8, 0.3, 0.2],   # -> v1; v0 higher: rank 2
                        [0.1, 0.4, 0.4]])  # -> v1; tie with v2: rank 2
    t2v = torch.tensor([0, 0, 0, 1, 1])
    assert rm.t2v_ranks(sim, t2v).tolist() == [2, 2, 1, 2, 2]
    # v0: best own caption 0.9 (texts 1 and 2 tie: own captions never push it down); wrong
    # texts 3, 4 score 0.8, 0.1: rank 1. v1: best own 0.4 (text 4); wrong texts >= 0.4 are
    # texts 0 (0.6) and 1 (0.5), both of v0: rank 3 (texts are ranked, not videos).
    # v2 has no caption and is left out.
    assert rm.v2t_ranks(sim, t2v).tolist() == [1, 3]
    m = rm.retrieval_metrics(sim, t2v)
    assert m['v2t/R@1'] == 50 and m['v2t/MdR'] == 2 and m['v2t/MnR'] == 2
    assert m['t2v/R@1'] == 20 and m['t2v/MnR'] == pytest.approx(9 / 5)


def brute_force(sim, t2v):
    """Literal definitions, one loop per query."""
    sim, t2v = sim.tolist(), t2v.tolist()
    t2v_r = [1 + sum(sim[i][v] >= sim[i][t2v[i]] for v in range(len(sim[0])) if v != t2v[i])
             for i in range(len(sim))]
    v2t_r = []
    for v in range(len(sim[0])):
        own = [i for i in range(len(sim)) if t2v[i] == v]
        if own:
            per_caption = [1 + sum(sim[j][v] >= sim[i][v] for j in range(len(sim))
                                   if t2v[j] != v) for i in own]
            v2t_r.append(min(per_caption))
    return t2v_r, v2t_r


@pytest.mark.parametrize('chunk', [1024, 3])
def test_matches_brute_force_with_many_ties(monkeypatch, chunk):
    monkeypatch.setattr(rm, '_CHUNK', chunk)
    g = torch.Generator().manual_seed(0)
    sim = torch.randint(0, 4, (23, 9), generator=g).double()  # few values: many ties
    t2v = torch.randint(0, 8, (23, ), generator=g)  # video 8 never described
    ref_t2v, ref_v2t = brute_force(sim, t2v)
    assert rm.t2v_ranks(sim, t2v).tolist() == ref_t2v
    assert rm.v2t_ranks(sim, t2v).tolist() == ref_v2t


def test_chance_recall_exact():
    assert rm.chance_recall(10, [1, 1], ks=(1, 5, 10))['R@5'] == pytest.approx(50)
    assert rm.chance_recall(4, [2], ks=(1, ))['R@1'] == pytest.approx(50)
    assert rm.chance_recall(3, [1], ks=(10, ))['R@10'] == pytest.approx(100)
    # Enumerate all orders of 6 texts, 2 of them correct: P(best correct in top 2).
    hits = [min(p.index(0), p.index(1)) < 2 for p in itertools.permutations(range(6))]
    assert rm.chance_recall(6, [2], ks=(2, ))['R@2'] == pytest.approx(100 * np.mean(hits))
    assert 100 * (1 - comb(4, 2) / comb(6, 2)) == pytest.approx(100 * np.mean(hits))


def test_input_errors():
    with pytest.raises(ValueError, match='NaN'):
        rm.t2v_ranks(torch.tensor([[float('nan'), 0.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match='index videos'):
        rm.v2t_ranks(torch.zeros(2, 2), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r'\(num_texts,\)'):
        rm.retrieval_metrics(torch.zeros(2, 2), torch.tensor([0]))


def sample(vid, video, texts):
    return dict(vid=vid, video_embed=torch.tensor(video, dtype=torch.float32),
                text_embeds=torch.tensor(texts, dtype=torch.float32),
                caption_ids=[f'{vid}#{k}' for k in range(len(texts))])


def test_retrieval_metric_end_to_end():
    metric = METRICS.build(dict(type='RetrievalMetric', prefix='ret'))
    assert isinstance(metric, RetrievalMetric)
    # Orthonormal video embeddings make sim[i, v] = text_i[v].
    videos = np.eye(3)
    texts = {'a': [[0.5, 0.6, 0.1], [0.9, 0.5, 0.9], [0.9, 0.1, 0.0]],
             'b': [[0.8, 0.3, 0.2], [0.1, 0.4, 0.4]],
             'c': []}
    batch1 = [sample('a', videos[0], texts['a']), sample('b', videos[1], texts['b'])]
    # 'c' has no caption; 'a' is repeated as the distributed sampler's padding would.
    c = dict(vid='c', video_embed=torch.tensor(videos[2], dtype=torch.float32),
             text_embeds=torch.zeros(0, 3), caption_ids=[])
    metric.process(None, batch1)
    metric.process(None, [c, sample('a', videos[0], texts['a'])])
    out = metric.evaluate(size=4)
    ref = rm.retrieval_metrics(
        torch.tensor(texts['a'] + texts['b']), torch.tensor([0, 0, 0, 1, 1]))
    for k, v in ref.items():
        assert out[f'ret/{k}'] == pytest.approx(v), k
    assert out['ret/v2t/R@1'] == 50 and out['ret/t2v/R@1'] == 20
    assert out['ret/chance/t2v/R@1'] == pytest.approx(100 / 3)
    # v2t over 5 texts: video a has 3 correct, b has 2; c (no caption) is left out, as in v2t.
    exp = np.mean([1 - comb(5 - m, 1) / comb(5, 1) for m in (3, 2)]) * 100
    assert exp == pytest.approx(50)
    assert out['ret/chance/v2t/R@1'] == pytest.approx(exp)
    assert metric.results == []


def test_retrieval_metric_input_errors():
    metric = RetrievalMetric()
    with pytest.raises(KeyError, match='video_embed'):
        metric.process(None, [dict(vid='a', text_embeds=torch.zeros(1, 2), caption_ids=['x'])])
    with pytest.raises(ValueError, match='caption_ids'):
        metric.process(None, [dict(vid='a', video_embed=torch.zeros(2),
                                   text_embeds=torch.zeros(2, 2), caption_ids=['x'])])
