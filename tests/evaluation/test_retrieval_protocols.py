"""Retrieval protocols: COCO-style v2t vs CLIP4Clip's multi-caption v2t, on a hand-made
multi-caption similarity matrix, on a random one against a re-implementation of CLIP4Clip's
procedure, through RetrievalMetric and through tools/eval_retrieval.py."""
import json

import numpy as np
import pytest
import torch

from mmvpeft.evaluation.functional.retrieval_metrics import (group_similarity,
                                                             retrieval_metrics,
                                                             v2t_ranks, v2t_ranks_clip4clip)
from mmvpeft.evaluation.metrics import RetrievalMetric

# 3 videos; video 0 has 2 captions, video 1 has 3, video 2 has 1 (rows: texts, cols: videos)
SIM = torch.tensor([
    [0.90, 0.50, 0.10],  # t0 -> v0: rank 1
    [0.20, 0.60, 0.30],  # t1 -> v0: rank 3
    [0.40, 0.30, 0.80],  # t2 -> v1: rank 3
    [0.10, 0.70, 0.50],  # t3 -> v1: rank 1
    [0.35, 0.55, 0.05],  # t4 -> v1: rank 1
    [0.15, 0.45, 0.25],  # t5 -> v2: rank 2
], dtype=torch.float64)
T2V = torch.tensor([0, 0, 1, 1, 1, 2])
# Group scores G[i, j] = max over the captions of video i for video j:
#   G = [[0.9, 0.6, 0.3], [0.4, 0.7, 0.8], [0.15, 0.45, 0.25]]
# clip4clip v2t: v0 own 0.9 beats 0.4, 0.15 -> 1; v1 own 0.7 beats 0.6, 0.45 -> 1;
#   v2 own 0.25 is below 0.3 (group 0) and 0.8 (group 1) -> 3.
# coco v2t: v2's best caption 0.25 is below the captions t1 (0.3), t2 (0.8), t3 (0.5) -> 4.
KS = (1, 3)


def test_hand_made_matrix_both_protocols():
    assert group_similarity(SIM, T2V).tolist() == [[0.9, 0.6, 0.3], [0.4, 0.7, 0.8],
                                                   [0.15, 0.45, 0.25]]
    assert v2t_ranks_clip4clip(SIM, T2V).tolist() == [1, 1, 3]
    assert v2t_ranks(SIM, T2V).tolist() == [1, 1, 4]
    c4c = retrieval_metrics(SIM, T2V, KS, protocol='clip4clip')
    coco = retrieval_metrics(SIM, T2V, KS, protocol='coco')
    for m in (c4c, coco):  # t2v is the same in both: ranks 1, 3, 3, 1, 1, 2
        assert m['t2v/R@1'] == pytest.approx(50.0)
        assert m['t2v/R@3'] == pytest.approx(100.0)
        assert m['t2v/MdR'] == 1.5 and m['t2v/MnR'] == pytest.approx(11 / 6)
    assert c4c['v2t/R@1'] == pytest.approx(200 / 3) and c4c['v2t/R@3'] == pytest.approx(100)
    assert c4c['v2t/MnR'] == pytest.approx(5 / 3)
    assert coco['v2t/R@1'] == pytest.approx(200 / 3) and coco['v2t/R@3'] == pytest.approx(200 / 3)
    assert coco['v2t/MnR'] == pytest.approx(2.0)
    with pytest.raises(ValueError, match='protocol'):
        retrieval_metrics(SIM, T2V, protocol='msvd')


def clip4clip_reference(sim_tensor, ks=(1, 5, 10)):
    """CLIP4Clip's evaluation, written from its definition: ``sim_tensor`` is (V, C, V)
    with -inf rows padding the caption groups. t2v: for each caption slot, the rank of the
    own video in a descending sort of its row; v2t: max over the caption slots, transpose
    (rows: videos, columns: groups), rank of the diagonal in a descending sort of its row."""
    v, c, _ = sim_tensor.shape
    t2v = []
    for i in range(v):
        for k in range(c):
            row = sim_tensor[i, k]
            if np.isinf(row).all():
                continue
            order = list(np.argsort(-row, kind='stable'))
            t2v.append(order.index(i))
    group = sim_tensor.max(1)  # (groups, videos)
    x = group.T
    v2t = [list(np.argsort(-x[j], kind='stable')).index(j) for j in range(v)]

    def summary(ranks):
        r = np.asarray(ranks)  # 0-based
        out = {f'R@{k}': 100.0 * (r < k).mean() for k in ks}
        out['MdR'] = float(np.median(r + 1))
        out['MnR'] = float(np.mean(r + 1))
        return out
    return summary(t2v), summary(v2t)


def _random_multi_caption(seed=0, num_videos=30, max_captions=6):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, max_captions + 1, num_videos)
    t2v = np.repeat(np.arange(num_videos), counts)
    sim = rng.normal(size=(len(t2v), num_videos))
    sim[np.arange(len(t2v)), t2v] += 1.5  # some signal, so ranks spread over 1..V
    tensor = np.full((num_videos, max_captions, num_videos), -np.inf)
    for i in range(num_videos):
        tensor[i, :counts[i]] = sim[t2v == i]
    return sim, t2v, tensor


def test_random_matrix_equals_clip4clip_definition():
    sim, t2v, tensor = _random_multi_caption()
    ref_t2v, ref_v2t = clip4clip_reference(tensor)
    ours = retrieval_metrics(torch.from_numpy(sim), torch.from_numpy(t2v),
                             protocol='clip4clip')
    for key, value in ref_t2v.items():
        assert ours[f't2v/{key}'] == pytest.approx(value), key
    for key, value in ref_v2t.items():
        assert ours[f'v2t/{key}'] == pytest.approx(value), key
    coco = retrieval_metrics(torch.from_numpy(sim), torch.from_numpy(t2v), protocol='coco')
    assert coco['v2t/MnR'] != pytest.approx(ours['v2t/MnR'])  # the protocols really differ


def test_metric_protocol_option():
    sim, t2v, _ = _random_multi_caption(seed=1, num_videos=12)
    # embeddings whose dot products are the similarities: texts = sim, videos = identity
    results = []
    for v in range(12):
        results.append(dict(vid=f'v{v}', video_embed=torch.eye(12)[v].tolist(),
                            text_embeds=torch.from_numpy(sim[t2v == v]).float(),
                            caption_ids=list(np.flatnonzero(t2v == v))))
    expected = {p: retrieval_metrics(torch.from_numpy(sim).float(), torch.from_numpy(t2v),
                                     protocol=p) for p in ('coco', 'clip4clip')}
    for protocol in ('coco', 'clip4clip'):
        metric = RetrievalMetric(protocol=protocol)
        metric.process(None, results)
        got = metric.compute_metrics(metric.results)
        for key, value in expected[protocol].items():
            assert got[key] == pytest.approx(value), (protocol, key)
    assert RetrievalMetric(protocol='clip4clip').protocol == 'clip4clip'
    with pytest.raises(ValueError, match='protocol'):
        RetrievalMetric(protocol='COCO')


def test_eval_retrieval_tool_prints_the_protocols(tmp_path, load_tool, capsys):
    tool = load_tool('eval_retrieval')
    np.save(tmp_path / 'sim.npy', SIM.numpy())
    (tmp_path / 't2v.txt').write_text('\n'.join(map(str, T2V.tolist())) + '\n')
    out = tool.main([str(tmp_path / 'sim.npy'), '--text-to-video', str(tmp_path / 't2v.txt'),
                     '--decimals', '-1'])
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(out))
    assert printed['clip4clip']['v2t/MnR'] == pytest.approx(5 / 3)
    assert printed['coco']['v2t/MnR'] == pytest.approx(2.0)
    assert printed['clip4clip']['t2v/R@1'] == pytest.approx(50.0)

    # CLIP4Clip's own (videos, captions, videos) tensor with -inf padding gives the same
    sim, t2v, tensor = _random_multi_caption(seed=2)
    np.save(tmp_path / 'tensor.npy', tensor)
    out3d = tool.main([str(tmp_path / 'tensor.npy'), '--protocol', 'clip4clip',
                       '--decimals', '-1'])
    ref_t2v, ref_v2t = clip4clip_reference(tensor)
    assert out3d['clip4clip']['v2t/R@1'] == pytest.approx(ref_v2t['R@1'])
    assert out3d['clip4clip']['t2v/MnR'] == pytest.approx(ref_t2v['MnR'])
    capsys.readouterr()

    np.save(tmp_path / 'bad.npy', SIM.numpy())  # not square, no mapping
    with pytest.raises(SystemExit):
        tool.main([str(tmp_path / 'bad.npy')])
    err = capsys.readouterr().err
    assert 'bad.npy' in err and 'not square' in err
