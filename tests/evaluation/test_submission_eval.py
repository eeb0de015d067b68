"""The standalone evaluator (eval_submission / tools/eval_moments.py) on hand-computed cases,
and its agreement with the in-training metrics (one implementation, two entry points)."""
import json
import math

import numpy as np
import pytest

from mmvpeft.evaluation.functional.highlight_metrics import (eval_domain_highlight,
                                                             ranking_average_precision,
                                                             resample_to_label_clips)
from mmvpeft.evaluation.functional.submission import SubmissionError, eval_submission
from mmvpeft.evaluation.metrics import HighlightMetric, MomentRetrievalMetric

# Three queries: two GT windows (both found), a score tie between a half and a full match,
# and a query without any prediction. Figures below are worked out by hand in the comments.
GTS = [
    dict(qid=1, duration=40, relevant_windows=[[0, 10], [20, 30]],
         relevant_clip_ids=[1, 2], saliency_scores=[[4, 2, 1], [2, 3, 0]]),
    dict(qid=2, duration=30, relevant_windows=[[10, 20]],
         relevant_clip_ids=[0], saliency_scores=[[2, 2, 2]]),
    dict(qid=3, duration=40, relevant_windows=[[0, 40]],
         relevant_clip_ids=[5], saliency_scores=[[0, 0, 0]]),
]
PREDS = [
    # top-1 [0, 10] is exact; AP 1 at every threshold ([5, 15] is a false positive last)
    dict(qid=1, pred_relevant_windows=[[0, 10, 0.9], [20, 30, 0.9], [5, 15, 0.5]],
         pred_saliency_scores=[0.1, 0.9, 0.5, 0.2]),
    # tie: the stable order puts the half match (tIoU 0.5) first -> R1@0.5 hit, R1@0.7 miss;
    # AP 1 at tIoU 0.5, 0.5 at the nine thresholds above -> 0.55
    dict(qid=2, pred_relevant_windows=[[10, 15, 0.8], [10, 20, 0.8]],
         pred_saliency_scores=[0.1, 0.9]),
    dict(qid=3, pred_relevant_windows=[], pred_saliency_scores=[1.0, 0.0]),
]


def test_moment_retrieval_hand_computed():
    brief = eval_submission(PREDS, GTS)['brief']
    expected = {
        'MR-full-R1@0.3': 200 / 3, 'MR-full-R1@0.5': 200 / 3, 'MR-full-R1@0.7': 100 / 3,
        'MR-full-mIoU': 50.0,                        # (1 + 0.5 + 0) / 3
        'MR-full-mAP': 100 * (1 + 0.55 + 0) / 3,
        'MR-full-mAP@0.5': 200 / 3, 'MR-full-mAP@0.75': 50.0,
        'MR-short-mAP': 100 * (1 + 0.55) / 2,       # q1, q2 (10 s windows)
        'MR-long-mAP': 0.0,                          # q3 (40 s), no prediction
    }
    for key, value in expected.items():
        assert brief[key] == pytest.approx(value, abs=1e-9), key
    assert 'MR-middle-mAP' not in brief  # empty bucket: left out, not 0


def test_highlight_three_thresholds_hand_computed():
    # clip matrices: q1 4 clips (duration 8 would be 4; here 40 s -> 20 clips, the rest 0)
    full = eval_submission(PREDS, GTS)['full']
    # q1: VeryGood positives a0={1}; Good a0={1}, a1={2}; Fair a0=a1={1, 2}. Top clip 1.
    # q2: Fair positives clip 0 for all; top clip 1 is negative -> miss, AP 0.5 each.
    # q3: no positive at any level; top clip 0 is negative.
    vg, good, fair = (full[f'HL-min-{n}'] for n in ('VeryGood', 'Good', 'Fair'))
    assert vg['HL-mAP'] == pytest.approx(100 * 1 / 9)
    assert good['HL-mAP'] == pytest.approx(100 * 1.5 / 9)
    assert fair['HL-mAP'] == pytest.approx(100 * 3.5 / 9)
    for level in (vg, good, fair):
        assert level['HL-Hit1'] == pytest.approx(100 / 3)


def test_youtube_and_tvsum_hand_computed():
    gts = [dict(qid='a', domain='dog', label=[[0], [1], [1], [0]]),
           dict(qid='b', domain='dog', label=[[1], [0]]),
           dict(qid='c', domain='ski', label=[[0], [0], [1]])]
    preds = [dict(qid='a', pred_saliency_scores=[0.9, 0.8, 0.1, 0.0]),
             dict(qid='b', pred_saliency_scores=[0.5, 0.5]),     # tie: clip order kept
             dict(qid='c', pred_saliency_scores=[0.3, 0.2, 0.1])]
    # a: 0 + 0.5 * 0.5 / 2 + 0.5 * (0.5 + 2/3) / 2 = 0.416667; b: 1; c: 1 * (1/3) / 2
    out = eval_submission(preds, gts)['full']['HL-youtube']
    assert out['HL-dog-mAP'] == pytest.approx(100 * (5 / 12 + 1) / 2)
    assert out['HL-ski-mAP'] == pytest.approx(100 / 6)
    assert out['HL-mAP'] == pytest.approx((100 * (5 / 12 + 1) / 2 + 100 / 6) / 2)

    # TVSum: annotator 0 positives above its median 3.5 -> clips 3, 4, 5; annotator 1 -> clip 0;
    # only the top 5 of the ranking count: a0 [0,0,0,1,1] -> 0.0625 + 0.1625; a1 [1,...] -> 1
    tv_gt = [dict(qid='t', domain='BK', label=[[1, 5], [2, 1], [3, 1], [4, 1], [5, 1], [5, 1]])]
    tv_pred = [dict(qid='t', pred_saliency_scores=[0.6, 0.5, 0.4, 0.3, 0.2, 0.1])]
    assert eval_submission(tv_pred, tv_gt)['brief']['HL-mAP'] == pytest.approx(
        100 * (0.225 + 1) / 2)
    # the whole ranking instead: a0 [0,0,0,1,1,1] -> (0.25/2 + 0.65/2 + 0.9/2) / 3 = 0.3
    assert eval_domain_highlight(tv_pred, tv_gt, 'tvsum', top_k=6)['HL-mAP'] == pytest.approx(
        100 * (0.3 + 1) / 2)


def test_ranking_ap_edge_cases():
    assert ranking_average_precision([0, 0], [0.2, 0.1]) == 0.0
    assert ranking_average_precision([1, 1], [0.2, 0.1]) == 1.0
    assert resample_to_label_clips([1., 2., 3.], 2.0, [[0, 1.7], [1.7, 3.4], [3.4, 9]]).tolist() \
        == [1., 2., 3.]


def test_equals_in_training_metrics():
    mr = MomentRetrievalMetric()
    hl = HighlightMetric()
    samples = [dict(qid=g['qid'], gt_windows=g['relevant_windows'], duration=g['duration'],
                    relevant_clip_ids=g['relevant_clip_ids'],
                    saliency_scores=g['saliency_scores'], **{k: v for k, v in p.items()
                                                            if k != 'qid'})
               for g, p in zip(GTS, PREDS)]
    mr.process(None, samples)
    hl.process(None, samples)
    in_training = {**mr.compute_metrics(mr.results), **hl.compute_metrics(hl.results)}
    brief = eval_submission(PREDS, GTS)['brief']
    pairs = {'MR-full-R1@0.3': 'R1@0.3', 'MR-full-R1@0.5': 'R1@0.5', 'MR-full-R1@0.7': 'R1@0.7',
             'MR-full-mIoU': 'mIoU', 'MR-full-mAP': 'mAP', 'MR-full-mAP@0.5': 'mAP@0.5',
             'MR-full-mAP@0.75': 'mAP@0.75', 'MR-short-mAP': 'mAP_short',
             'MR-long-mAP': 'mAP_long'}
    pairs.update({f'HL-min-{n}-{m}': f'HL-min-{n}-{m}' for n in ('Fair', 'Good', 'VeryGood')
                  for m in ('mAP', 'Hit1')})
    for tool_key, metric_key in pairs.items():
        assert brief[tool_key] == in_training[metric_key], tool_key

    yt = HighlightMetric(protocol='youtube')
    gts = [dict(qid='a', domain='dog', label=[[0], [1], [1]]),
           dict(qid='b', domain='ski', label=[[1], [0]])]
    preds = [dict(qid='a', pred_saliency_scores=[0.2, 0.9, 0.1]),
             dict(qid='b', pred_saliency_scores=[0.1, 0.4])]
    yt.process(None, [dict(qid=g['qid'], domain=g['domain'], clip_labels=g['label'],
                           pred_saliency_scores=p['pred_saliency_scores'])
                      for g, p in zip(gts, preds)])
    assert yt.compute_metrics(yt.results) == eval_submission(preds, gts)['full']['HL-youtube']


@pytest.mark.parametrize('bad, message', [
    (lambda p: p[:2], 'qid=3'),                                             # missing qid
    (lambda p: p[:1] + [dict(p[1], pred_saliency_scores=[float('nan'), 1])] + p[2:], 'qid=2'),
    (lambda p: p[:1] + [dict(p[1], pred_relevant_windows=[[31, 10, 0.5]])] + p[2:], 'qid=2'),
    (lambda p: [dict(p[0], pred_relevant_windows=[[0, 10, float('nan')]])] + p[1:], 'qid=1'),
])
def test_bad_submissions_name_the_qid(bad, message):
    with pytest.raises(SubmissionError, match=message):
        eval_submission(bad(PREDS), GTS)


def test_tool_prints_brief_and_full_and_writes_out(tmp_path, load_tool, capsys):
    gt, pred, out = tmp_path / 'gt.jsonl', tmp_path / 'pred.jsonl', tmp_path / 'm' / 'm.json'
    gt.write_text(''.join(json.dumps(r) + '\n' for r in GTS))
    pred.write_text(''.join(json.dumps(r) + '\n' for r in PREDS))
    tool = load_tool('eval_moments')
    tool.main(['--gt', str(gt), '--pred', str(pred), '--out', str(out)])
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert printed['brief']['MR-full-mAP'] == round(100 * 1.55 / 3, 2)
    assert printed['full']['MR-full']['MR-mAP']['0.95'] == round(100 * 1.5 / 3, 2)
    assert not any(math.isnan(v) for v in printed['brief'].values())
    pred.write_text(''.join(json.dumps(r) + '\n' for r in PREDS[:2]))
    with pytest.raises(SystemExit):
        tool.main(['--gt', str(gt), '--pred', str(pred)])
    assert 'qid=3' in capsys.readouterr().err
