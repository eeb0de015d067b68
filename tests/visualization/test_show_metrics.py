"""The --show-dir visualizers on hand-made predictions (no model): what they rank, keep and
draw."""
import os

import cv2
import numpy as np
import pytest
import torch

from mmvpeft.visualization import (CaptionVisualizer, MomentVisualizer, QAVisualizer,
                                   RetrievalVisualizer)


def _retrieval_samples():
    """4 videos with 2, 1, 0 and 1 captions; embeddings chosen so that the rankings are
    known: caption k of video i is close to video (i + k) % 4."""
    gen = torch.Generator().manual_seed(0)
    basis = torch.nn.functional.normalize(torch.randn(4, 8, generator=gen), dim=-1)
    samples = []
    for i, count in enumerate([2, 1, 0, 1]):
        texts = torch.stack([basis[(i + k) % 4] + 0.05 * basis[(i + 1) % 4]
                             for k in range(count)]) if count else torch.zeros(0, 8)
        samples.append(dict(vid=f'v{i}', video_embed=basis[i], text_embeds=texts,
                            captions=[f'caption {k} of v{i}' for k in range(count)]))
    return samples


def test_retrieval_rankings_are_the_brute_force_ones(tmp_path):
    samples = _retrieval_samples()
    vis = RetrievalVisualizer(str(tmp_path), show_num=5, top_k=3)
    vis.process(None, samples + samples[:1])  # a repeated video (distributed sampler)
    t2v, v2t = vis.rankings(vis.results)
    assert len(vis.videos) == 4 and vis.owner == [0, 0, 1, 3]
    # 3 caption-to-video pictures (rounded up half of 5) for the described videos 0, 1, 3
    assert [h['video'] for h in t2v] == [0, 1, 3] and [h['video'] for h in v2t] == [0, 1]
    texts = torch.cat([s['text_embeds'] for s in samples])
    videos = torch.stack([s['video_embed'] for s in samples])
    sim = texts @ videos.T
    for hit in t2v:
        order = sorted(range(4), key=lambda j: -float(sim[hit['caption'], j]))
        assert [j for j, _ in hit['top']] == order[:3]
        assert hit['rank'] == order.index(hit['video']) + 1
        assert [s for _, s in hit['top']] == pytest.approx(
            [float(sim[hit['caption'], j]) for j in order[:3]])
    assert t2v[0]['rank'] == 1  # caption 0 of v0 is closest to v0
    for hit in v2t:
        order = sorted(range(4), key=lambda t: -float(sim[t, hit['video']]))
        assert [t for t, _ in hit['top']] == order[:3]
        assert hit['rank'] == 1 + min(order.index(t) for t in range(4)
                                      if vis.owner[t] == hit['video'])
    vis.compute_metrics(vis.results)
    assert sorted(os.listdir(tmp_path)) == ['t2v_000_v0.png', 't2v_001_v1.png',
                                            't2v_002_v3.png', 'v2t_000_v0.png',
                                            'v2t_001_v1.png']


def test_non_retrieval_visualizers_keep_show_num_and_need_their_keys(tmp_path):
    moment = MomentVisualizer(str(tmp_path / 'm'), show_num=2)
    moment.process(None, [dict(qid=i, query='q', pred_relevant_windows=[[0, 2, 0.3],
                                                                         [1, 3, 0.9]],
                               pred_saliency_scores=np.array([0.1, 0.5, 0.2]), clip_len=2.0)
                          for i in range(3)])
    assert len(moment.results) == 2
    assert moment.results[0]['windows'][0] == [1.0, 3.0, 0.9]  # best first
    assert moment.results[0]['duration'] == 6.0  # 3 clips of 2 s when no duration is given
    moment.compute_metrics(moment.results)
    img = cv2.imread(str(tmp_path / 'm' / 'moment_000_0.png'))
    assert img is not None and img.shape[1] == 960

    qa = QAVisualizer(str(tmp_path / 'qa'), show_num=4)
    with pytest.raises(KeyError, match=r"QAVisualizer \(--show-dir\) needs \['pred_answer'\]"):
        qa.process(None, [dict(qid=1, question='what?')])
    qa.process(None, [dict(qid=1, question='what colour?', pred_answer='Red', answer='red',
                           topk_answers=['Red', 'blue'], topk_scores=[0.7, 0.2])])
    assert qa.results[0]['topk'] == [('Red', 0.7), ('blue', 0.2)]
    caption = CaptionVisualizer(str(tmp_path / 'cap'), show_num=1, pred_key='pred_answer')
    caption.process(None, [dict(vid='v', pred_answer='a dog runs', captions='a dog runs')])
    assert caption.results[0]['refs'] == ['a dog runs']
    for vis in (qa, caption):
        vis.compute_metrics(vis.results)
    assert len(os.listdir(tmp_path / 'qa')) == len(os.listdir(tmp_path / 'cap')) == 1
    with pytest.raises(ValueError, match='show_num must be >= 1'):
        QAVisualizer(str(tmp_path), show_num=0)
