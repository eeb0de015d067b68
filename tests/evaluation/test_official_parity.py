"""Parity with the official QVHighlights (moment_detr standalone) evaluator on a moment_detr-
format prediction file whose windows pass the video's ends.

The reference below is a plain re-implementation of the official definitions, written from
them loop by loop (no shared code with mmvpeft): tIoU = overlap / hull, R1 from the first
(highest-score) window against its best-matching GT window, per-query ActivityNet AP with
greedy GT locking and interpolated precision, averaged over tIoU 0.50:0.05:0.95.
"""
import json
import warnings

import numpy as np
import pytest

from mmvpeft.evaluation.functional.submission import SubmissionError, eval_submission
from mmvpeft.evaluation.metrics import MomentRetrievalMetric

AP_THRESHOLDS = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]


# ----------------------------------------------------------------- reference (official) ---
def ref_iou(a, b):
    """Official tIoU: overlap over the hull of the two windows (equals the union when they
    overlap; 0 when they do not). No clipping to the video."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    hull = max(a[1], b[1]) - min(a[0], b[0])
    return inter / hull


def ref_interp_ap(prec, rec):
    mp = [0.0] + list(prec) + [0.0]
    mr = [0.0] + list(rec) + [1.0]
    for i in range(len(mp) - 2, -1, -1):
        mp[i] = max(mp[i], mp[i + 1])
    return sum((mr[i] - mr[i - 1]) * mp[i] for i in range(1, len(mr)) if mr[i] != mr[i - 1])


def ref_query_ap(pred, gt, thr):
    """pred: [[s, e, score]] (first 10 of the file), gt: [[s, e]]."""
    pred = sorted(pred, key=lambda w: -w[2])  # Python's sort is stable, as the official one
    locked = [-1] * len(gt)
    tp, fp = [], []
    for idx, p in enumerate(pred):
        ious = np.array([ref_iou(p, g) for g in gt])
        hit = False
        for j in ious.argsort()[::-1]:
            if ious[j] < thr:
                break
            if locked[j] >= 0:
                continue
            locked[j] = idx
            hit = True
            break
        tp.append(1.0 if hit else 0.0)
        fp.append(0.0 if hit else 1.0)
    if not pred:
        return 0.0
    tpc, fpc = np.cumsum(tp), np.cumsum(fp)
    return ref_interp_ap(tpc / (tpc + fpc), tpc / len(gt))


def reference_metrics(preds, gts):
    by_qid = {p['qid']: p for p in preds}
    r1_hits = {t: [] for t in (0.3, 0.5, 0.7)}
    ious, aps = [], []
    for g in gts:
        p = by_qid[g['qid']]['pred_relevant_windows']
        top = p[0][:2]
        best = max(ref_iou(top, w) for w in g['relevant_windows'])
        ious.append(best)
        for t in r1_hits:
            r1_hits[t].append(best >= t)
        aps.append([ref_query_ap(p[:10], g['relevant_windows'], t) for t in AP_THRESHOLDS])
    aps = np.array(aps)
    out = {f'MR-full-R1@{t:g}': 100 * np.mean(h) for t, h in r1_hits.items()}
    out['MR-full-mIoU'] = 100 * np.mean(ious)
    out['MR-full-mAP'] = 100 * aps.mean()
    out['MR-full-mAP@0.5'] = 100 * aps[:, 0].mean()
    out['MR-full-mAP@0.75'] = 100 * aps[:, 5].mean()
    return out


# ------------------------------------------------------------------------ the test file ---
def moment_detr_file(seed=0, num_queries=40):
    """GT and a moment_detr-style submission: 10 windows per query sorted by score, many of
    them passing the end of the video (and a few starting before 0), as DETR heads emit."""
    rng = np.random.default_rng(seed)
    gts, preds = [], []
    for q in range(num_queries):
        duration = float(rng.choice([30.0, 128.0, 150.0]))
        gt = []
        for _ in range(int(rng.integers(1, 3))):
            s = float(np.round(rng.uniform(0, duration - 4), 0))
            gt.append([s, float(min(duration, s + np.round(rng.uniform(2, 40), 0)))])
        windows = []
        for k in range(10):
            if k < 3:  # near a GT window, pushed past the end
                s, e = gt[k % len(gt)]
                s, e = s + rng.uniform(-3, 3), e + rng.uniform(-3, 25)
            else:
                s = rng.uniform(-5, duration)
                e = s + rng.uniform(1, 60)
            windows.append([round(float(s), 4), round(float(e), 4),
                            round(float(rng.uniform(0, 1)), 4)])
        windows.sort(key=lambda w: -w[2])
        gts.append(dict(qid=q, vid=f'v{q}', duration=duration, relevant_windows=gt))
        preds.append(dict(qid=q, vid=f'v{q}', pred_relevant_windows=windows))
    # the example window
    gts[0].update(duration=128.0, relevant_windows=[[80.0, 128.0]])
    preds[0]['pred_relevant_windows'][0][:2] = [70.0, 130.0]
    return preds, gts


def _num_outside(preds, gts):
    dur = {g['qid']: g['duration'] for g in gts}
    return sum(w[0] < -1e-2 or w[1] > dur[p['qid']] + 1e-2
               for p in preds for w in p['pred_relevant_windows'])


def test_windows_past_the_end_scored_as_the_official_evaluator():
    preds, gts = moment_detr_file()
    assert _num_outside(preds, gts) > 20  # the file really exercises it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        brief = eval_submission(preds, gts)['brief']
    outside = [w for w in caught if 'outside [0, duration]' in str(w.message)]
    assert len(outside) == 1  # at most one warning, counting them
    assert f'{_num_outside(preds, gts)} of 400 predicted windows' in str(outside[0].message)
    ref = reference_metrics(preds, gts)
    for key, value in ref.items():
        assert brief[key] == pytest.approx(value, abs=1e-9), key
    # scoring really depends on the outside part: clipping to the video changes the mIoU
    dur = {g['qid']: g['duration'] for g in gts}
    clipped = [dict(p, pred_relevant_windows=[[max(0, s), min(dur[p['qid']], e), c] for s, e, c
                                              in p['pred_relevant_windows']]) for p in preds]
    assert reference_metrics(clipped, gts)['MR-full-mIoU'] != pytest.approx(ref['MR-full-mIoU'])


def test_cli_functional_and_in_training_metric_agree(tmp_path, load_tool, capsys):
    preds, gts = moment_detr_file(seed=1)
    gt_file, pred_file = tmp_path / 'gt.jsonl', tmp_path / 'pred.jsonl'
    gt_file.write_text(''.join(json.dumps(r) + '\n' for r in gts))
    pred_file.write_text(''.join(json.dumps(r) + '\n' for r in preds))
    tool = load_tool('eval_moments')
    with pytest.warns(UserWarning, match='outside'):
        cli = tool.main([str(pred_file), '--gt', str(gt_file), '--decimals', '-1'])
    printed = json.loads(capsys.readouterr().out)
    assert printed['brief'] == pytest.approx(cli['brief'])
    with pytest.warns(UserWarning, match='outside'):
        functional = eval_submission(preds, gts)['brief']
    assert cli['brief'] == functional

    metric = MomentRetrievalMetric()
    metric.process(None, [dict(qid=g['qid'], gt_windows=g['relevant_windows'],
                               pred_relevant_windows=p['pred_relevant_windows'])
                          for p, g in zip(preds, gts)])
    in_training = metric.compute_metrics(metric.results)
    names = {'MR-full-R1@0.3': 'R1@0.3', 'MR-full-R1@0.5': 'R1@0.5', 'MR-full-R1@0.7': 'R1@0.7',
             'MR-full-mIoU': 'mIoU', 'MR-full-mAP': 'mAP', 'MR-full-mAP@0.5': 'mAP@0.5',
             'MR-full-mAP@0.75': 'mAP@0.75'}
    for cli_key, metric_key in names.items():
        assert cli['brief'][cli_key] == in_training[metric_key], cli_key
    ref = reference_metrics(preds, gts)
    for key, value in ref.items():
        assert cli['brief'][key] == pytest.approx(value, abs=1e-9), key


def test_submission_without_saliency_gets_mr_metrics(tmp_path, load_tool, capsys):
    preds, gts = moment_detr_file(seed=2, num_queries=5)
    for g in gts:  # QVHighlights ground truth, with saliency
        g.update(relevant_clip_ids=[0, 1], saliency_scores=[[4, 3, 2], [1, 0, 2]])
    with pytest.warns(UserWarning, match='outside'):
        out = eval_submission(preds, gts)
    assert 'MR-full-mAP' in out['brief']
    assert not any(k.startswith('HL') for k in out['brief'])
    gt_file, pred_file = tmp_path / 'gt.jsonl', tmp_path / 'pred.jsonl'
    gt_file.write_text(''.join(json.dumps(r) + '\n' for r in gts))
    pred_file.write_text(''.join(json.dumps(r) + '\n' for r in preds))
    with pytest.warns(UserWarning, match='outside'):
        cli = load_tool('eval_moments').main(['--pred', str(pred_file), '--gt', str(gt_file)])
    assert cli['brief']['MR-full-mAP'] == round(out['brief']['MR-full-mAP'], 2)


def test_other_checks_stay():
    preds, gts = moment_detr_file(seed=3, num_queries=3)
    bad = [dict(preds[0], pred_relevant_windows=[[20.0, 10.0, 0.5]])] + preds[1:]
    with pytest.raises(SubmissionError, match='qid=0.*end < start'):
        eval_submission(bad, gts)
    bad = [dict(preds[0], pred_relevant_windows=[[0.0, float('inf'), 0.5]])] + preds[1:]
    with pytest.raises(SubmissionError, match='qid=0'):
        eval_submission(bad, gts)
    with pytest.raises(SubmissionError, match='qid=2'):
        eval_submission(preds[:2], gts)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # windows inside the videos: no warning
        inside = [dict(p, pred_relevant_windows=[[0.0, 1.0, 0.5]]) for p in preds]
        eval_submission(inside, gts)
