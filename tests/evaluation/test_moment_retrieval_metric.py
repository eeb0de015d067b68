"""MomentRetrievalMetric, HighlightMetric and MomentSubmissionDumper on top of MMEngine."""
import json
import os

import numpy as np
import pytest
import torch

from mmvpeft.evaluation.functional.moment_metrics import eval_moment_retrieval
from mmvpeft.evaluation.metrics.highlight_metric import HighlightMetric
from mmvpeft.evaluation.metrics.moment_retrieval_metric import MomentRetrievalMetric
from mmvpeft.evaluation.metrics.submission_dumper import MomentSubmissionDumper
from mmvpeft.registry import METRICS


def _samples():
    """Model outputs of two queries; windows unsorted, mixed list / array / tensor types."""
    return [
        dict(qid=1, query='a man talks', vid='v1', gt_windows=[[0, 10], [18, 30]],
             # top-1 is [20,30] (score .95): best tIoU 10/12 with [18,30]
             pred_relevant_windows=torch.tensor([[0., 10., 0.9], [20., 30., 0.95]]),
             video_feat=np.zeros((75, 512), np.float32)),
        dict(qid=2, query='a dog runs', vid='v2', gt_windows=np.array([[0., 10.]]),
             # tie: the first listed [0,5] is top-1, tIoU exactly 0.5
             pred_relevant_windows=[[0, 5, 0.5], [0, 10, 0.5]],
             video_feat=np.zeros((75, 512), np.float32)),
    ]


def test_registered():
    assert METRICS.get('MomentRetrievalMetric') is MomentRetrievalMetric
    assert METRICS.get('MomentSubmissionDumper') is MomentSubmissionDumper
    assert METRICS.get('HighlightMetric') is HighlightMetric
    metric = METRICS.build(dict(type='MomentRetrievalMetric', max_windows=5))
    assert isinstance(metric, MomentRetrievalMetric) and metric.max_windows == 5


def test_metric_keeps_only_what_it_needs():
    metric = MomentRetrievalMetric()
    metric.process({}, _samples())
    assert [sorted(r) for r in metric.results] == [
        ['gt_windows', 'pred_relevant_windows', 'qid']] * 2
    assert isinstance(metric.results[0]['pred_relevant_windows'], np.ndarray)


def test_metric_evaluate_hand_case():
    metric = MomentRetrievalMetric()
    metric.process({}, _samples()[:1])
    metric.process({}, _samples()[1:])
    out = metric.evaluate(size=2)
    # top-1 tIoUs: 5/6 and 0.5.
    assert out['R1@0.3'] == pytest.approx(100.0)
    assert out['R1@0.5'] == pytest.approx(100.0)  # 0.5 is a hit at 0.5 (>=)
    assert out['R1@0.7'] == pytest.approx(50.0)
    assert out['mIoU'] == pytest.approx(100 * (5 / 6 + 0.5) / 2)
    # q1 ranking [20,30] (.95) then [0,10] (.9), GT {[0,10], [18,30]}:
    #   thr <= .8: both TP -> AP 1; thr .85-.95: [20,30] (tIoU .833) FP, [0,10] TP
    #   -> P = [0, 1/2], R = [0, 1/2] -> AP 1/4.
    # q2 ranking [0,5] then [0,10], GT {[0,10]}:
    #   thr .5: [0,5] TP -> AP 1; thr > .5: [0,5] FP, [0,10] TP -> AP 1/2.
    q1 = np.array([1.0] * 7 + [0.25] * 3)
    q2 = np.array([1.0] + [0.5] * 9)
    assert out['mAP'] == pytest.approx(100 * (q1 + q2).mean() / 2)
    assert out['mAP@0.5'] == pytest.approx(100.0)
    assert out['mAP@0.75'] == pytest.approx(75.0)
    # GT lengths 10 (short), 12 (middle); q2 is short only.
    # short: q1 with GT [0,10] -> [20,30] FP, [0,10] TP -> AP 1/2 at all thr; q2 as above.
    assert out['mAP_short'] == pytest.approx(100 * (0.5 + q2.mean()) / 2)
    # middle: q1 with GT [18,30] -> [20,30] TP (tIoU .833) up to .8, then FP -> AP 1 or 0.
    assert out['mAP_middle'] == pytest.approx(70.0)
    assert 'mAP_long' not in out
    assert metric.results == []  # evaluate() resets


def test_metric_prefix_and_custom_thresholds():
    metric = MomentRetrievalMetric(iou_thresholds=(0.1, 0.9), prefix='MR')
    metric.process({}, _samples())
    out = metric.evaluate(size=2)
    assert out['MR/R1@0.1'] == pytest.approx(100.0)
    assert out['MR/R1@0.9'] == pytest.approx(0.0)
    assert 'MR/R1@0.5' not in out and 'MR/mAP' in out


def test_metric_max_windows():
    sample = dict(qid=1, gt_windows=[[0, 10]],
                  pred_relevant_windows=[[50, 60, 0.9], [0, 10, 0.5]])
    one = MomentRetrievalMetric(max_windows=1)
    one.process({}, [sample])
    two = MomentRetrievalMetric(max_windows=2)
    two.process({}, [sample])
    assert one.evaluate(1)['mAP'] == pytest.approx(0.0)
    assert two.evaluate(1)['mAP'] == pytest.approx(50.0)  # FP then TP -> P = 1/2


def test_metric_rejects_bad_input():
    metric = MomentRetrievalMetric()
    with pytest.raises(KeyError, match='gt_windows'):
        metric.process({}, [dict(qid=1, pred_relevant_windows=[[0, 1, 1]])])
    metric.process({}, [dict(qid=3, gt_windows=[[4, 2]], pred_relevant_windows=[[0, 1, 1]])])
    with pytest.raises(ValueError, match=r'qid=3.*end < start'):
        metric.evaluate(size=1)
    with pytest.raises(ValueError, match='max_windows'):
        MomentRetrievalMetric(max_windows=0)


# ----------------------------------------------------------------------------- dumper


def test_dumper_writes_sorted_rounded_jsonl(tmp_path):
    out_file = tmp_path / 'nested' / 'dir' / 'preds.jsonl'
    dumper = METRICS.build(dict(type='MomentSubmissionDumper', out_file=str(out_file)))
    samples = _samples()
    samples[0]['qid'] = np.int64(1)  # numpy scalars must come out as JSON numbers
    samples[1]['pred_relevant_windows'] = [[1.23456, 5.0, 0.5], [0, 10.000049, 0.5],
                                           [2, 3, 0.123456789]]
    samples[1]['pred_saliency_scores'] = torch.tensor([0.123456, 1.0])
    dumper.process({}, samples)
    assert dumper.evaluate(size=2) == {}

    lines = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert lines == [
        dict(qid=1, query='a man talks', vid='v1',
             pred_relevant_windows=[[20.0, 30.0, 0.95], [0.0, 10.0, 0.9]]),
        dict(qid=2, query='a dog runs', vid='v2',
             # the tie at .5 keeps input order; 10.000049 -> 10.0, 0.123456789 -> 0.1235
             pred_relevant_windows=[[1.2346, 5.0, 0.5], [0.0, 10.0, 0.5],
                                    [2.0, 3.0, 0.1235]],
             pred_saliency_scores=[0.1235, 1.0]),
    ]
    assert os.listdir(out_file.parent) == ['preds.jsonl']  # no temp file left


def test_dumper_output_evaluates_like_the_metric(tmp_path):
    out_file = tmp_path / 'preds.jsonl'
    dumper = MomentSubmissionDumper(out_file=str(out_file))
    metric = MomentRetrievalMetric()
    dumper.process({}, _samples())
    metric.process({}, _samples())
    dumper.evaluate(2)
    submission = [json.loads(line) for line in out_file.read_text().splitlines()]
    gts = [dict(qid=s['qid'], relevant_windows=np.asarray(s['gt_windows']).tolist())
           for s in _samples()]
    assert eval_moment_retrieval(submission, gts) == pytest.approx(metric.evaluate(2))


def test_dumper_failure_leaves_previous_file(tmp_path):
    out_file = tmp_path / 'preds.jsonl'
    out_file.write_text('old\n')
    dumper = MomentSubmissionDumper(out_file=str(out_file))
    bad = _samples()[:1]
    bad[0]['query'] = object()  # not JSON serialisable -> fails while writing
    dumper.process({}, bad)
    with pytest.raises(TypeError):
        dumper.evaluate(size=1)
    assert out_file.read_text() == 'old\n'
    assert os.listdir(tmp_path) == ['preds.jsonl']


def test_dumper_arguments(tmp_path):
    with pytest.raises(ValueError, match='.jsonl'):
        MomentSubmissionDumper(out_file=str(tmp_path / 'preds.json'))
    dumper = MomentSubmissionDumper(out_file=str(tmp_path / 'p.jsonl'))
    with pytest.raises(KeyError, match='vid'):
        dumper.process({}, [dict(qid=1, query='q', pred_relevant_windows=[[0, 1, 1]])])


# ----------------------------------------------------------------------------- highlights


def _hd_samples():
    return [
        # 10 s / 2 s = 5 clips. Annotator scores per clip (0 and 4 are not relevant -> 0):
        #   c1 [4,2,0], c2 [3,3,1], c3 [1,4,2]. Predicted: c1 .9, c2 = c3 = .5 (tie).
        dict(qid=1, duration=10, relevant_clip_ids=[1, 2, 3],
             saliency_scores=[[4, 2, 0], [3, 3, 1], [1, 4, 2]],
             pred_saliency_scores=[0.1, 0.9, 0.5, 0.5, 0.0]),
        # 6 s -> 3 clips, c0 positive for everyone at every level; 4 predicted scores: the top
        # one (index 3) lies past the video -> HIT@1 miss; for AP the scores are cut to 3 and
        # c0 ranks last of 3 -> AP 1/3 for each annotator and level.
        dict(qid=2, duration=6, relevant_clip_ids=[0], saliency_scores=[[4, 4, 4]],
             pred_saliency_scores=torch.tensor([0.1, 0.2, 0.3, 0.9])),
    ]


def test_highlight_metric_hand_case():
    metric = METRICS.build(dict(type='HighlightMetric'))
    metric.process({}, _hd_samples())
    out = metric.evaluate(size=2)
    # q1 APs per annotator (levels: .9 {c1}, .5 {c2, c3}, then c0, c4):
    #   VeryGood (>=4): a0 {c1} -> 1; a1 {c3} -> tied level P = 1/3; a2 none -> 0
    #   Good (>=3):     a0 {c1,c2} -> (1 + 2/3)/2 = 5/6; a1 {c2,c3} -> 2/3; a2 none -> 0
    #   Fair (>=2):     a0 {c1,c2} -> 5/6; a1 {c1,c2,c3} -> 1; a2 {c3} -> 1/3
    # q2: 1/3 for each annotator.
    assert out['HL-min-VeryGood-mAP'] == pytest.approx(100 * (1 + 1 / 3 + 0 + 1) / 6)
    assert out['HL-min-Good-mAP'] == pytest.approx(100 * (5 / 6 + 2 / 3 + 0 + 1) / 6)
    assert out['HL-min-Fair-mAP'] == pytest.approx(100 * (5 / 6 + 1 + 1 / 3 + 1) / 6)
    # q1's top clip c1 is positive for annotator 0 at every level; q2 misses.
    for level in ('VeryGood', 'Good', 'Fair'):
        assert out[f'HL-min-{level}-Hit1'] == pytest.approx(50.0)
    assert len(out) == 6


def test_highlight_metric_hit_needs_one_annotator_only():
    # Top clip c0 has scores [0, 0, 3]: positive at Good for annotator 2 only -> still a hit.
    metric = HighlightMetric(levels={'Good': 3})
    metric.process({}, [dict(qid=1, duration=4, relevant_clip_ids=[0],
                             saliency_scores=[[0, 0, 3]], pred_saliency_scores=[1.0, 0.0])])
    assert metric.evaluate(1)['HL-min-Good-Hit1'] == pytest.approx(100.0)


def test_highlight_metric_rejects_bad_input():
    metric = HighlightMetric()
    with pytest.raises(KeyError, match='saliency_scores'):
        metric.process({}, [dict(qid=1, duration=4, relevant_clip_ids=[0],
                                 pred_saliency_scores=[1.0])])
    with pytest.raises(ValueError, match=r'qid=1.*relevant_clip_ids'):
        metric.process({}, [dict(qid=1, duration=4, relevant_clip_ids=[2],
                                 saliency_scores=[[1, 1, 1]], pred_saliency_scores=[1.0])])
