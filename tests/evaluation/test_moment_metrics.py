"""Functional temporal-grounding metrics, checked against hand-computed numbers and a plain
loop re-derivation of moment_detr's definitions."""
import numpy as np
import pytest

from mmvpeft.evaluation.functional.moment_metrics import (
    LENGTH_BUCKETS, MAP_IOU_THRESHOLDS, average_precision_detection, eval_highlight,
    eval_moment_retrieval, filter_by_length, highlight_average_precision,
    interpolated_precision_recall, moment_retrieval_map, r1_and_miou, saliency_matrix,
    temporal_iou)


def _w(rows):
    return np.asarray(rows, dtype=np.float64).reshape(-1, len(rows[0]) if rows else 3)


# ----------------------------------------------------------------------------- tIoU / R1


def test_temporal_iou_pairs():
    pred = _w([[0, 10], [5, 15], [20, 30]])
    gt = _w([[0, 10], [10, 20]])
    # [5,15] vs [0,10]: inter 5, union 15; vs [10,20]: inter 5, union 15. [20,30]: touches none.
    expected = np.array([[1.0, 0.0], [1 / 3, 1 / 3], [0.0, 0.0]])
    np.testing.assert_allclose(temporal_iou(pred, gt), expected)
    # The score column of a prediction is ignored.
    np.testing.assert_allclose(temporal_iou(np.c_[pred, [9, 9, 9]], gt), expected)


def test_temporal_iou_zero_length_windows_give_zero_not_nan():
    iou = temporal_iou(_w([[5, 5], [5, 5]]), _w([[5, 5], [0, 10]]))
    assert np.array_equal(iou, np.zeros((2, 2)))


def test_r1_and_miou_hand_case():
    preds = [
        # q0: unsorted; the top-1 is [20,30] (score .95), best GT [18,30]: 10/12 = 5/6.
        _w([[0, 10, 0.9], [20, 30, 0.95]]),
        # q1: score tie -> the first listed ([0,5]) is top-1; tIoU 5/10 = 0.5 exactly, which
        # is a hit at 0.5 (>=). Picking [0,10] instead would give tIoU 1.
        _w([[0, 5, 0.5], [0, 10, 0.5]]),
        # q2: no overlap at all.
        _w([[50, 60, 1.0]]),
        # q3: no prediction -> tIoU 0.
        np.zeros((0, 3)),
    ]
    gts = [_w([[0, 10], [18, 30]]), _w([[0, 10]]), _w([[0, 10]]), _w([[0, 10]])]
    r1, miou = r1_and_miou(preds, gts, (0.3, 0.5, 0.7))
    # top-1 tIoUs: 5/6, 0.5, 0, 0 -> R1@0.3 = R1@0.5 = 2/4, R1@0.7 = 1/4.
    np.testing.assert_allclose(r1, [0.5, 0.5, 0.25])
    assert miou == pytest.approx((5 / 6 + 0.5) / 4)


# ----------------------------------------------------------------------------- AP


def test_interpolated_precision_recall_plain_steps():
    # 2 GT: TP, FP, TP -> P = [1, 1/2, 2/3], R = [1/2, 1/2, 1]
    # area = 0.5 * 1 + 0.5 * 2/3 = 5/6
    assert interpolated_precision_recall([1, 0.5, 2 / 3], [0.5, 0.5, 1]) == pytest.approx(5 / 6)


def test_interpolated_precision_recall_lifts_precision_from_higher_recall():
    # 2 GT: FP, TP, TP -> P = [0, 1/2, 2/3], R = [0, 1/2, 1]. Interpolation replaces the 1/2 at
    # recall 0.5 by the 2/3 reached later: 0.5 * 2/3 + 0.5 * 2/3 = 2/3 (not 0.5833).
    assert interpolated_precision_recall([0, 0.5, 2 / 3], [0, 0.5, 1]) == pytest.approx(2 / 3)


def test_interpolated_precision_recall_missing_recall_counts_as_zero():
    # Recall stops at 0.5: the padded step from 0.5 to 1 has precision 0 -> 0.5 * 1 = 0.5.
    assert interpolated_precision_recall([1.0], [0.5]) == pytest.approx(0.5)


def test_ap_detection_score_tie_and_two_gt():
    gt = _w([[0, 10], [20, 30]])
    pred = _w([
        [0, 10, 0.9],   # a: tIoU 1 with GT0
        [1, 10, 0.9],   # b: same score as a, listed after it; tIoU .9 with GT0 only
        [20, 26, 0.8],  # c: tIoU 6/10 = 0.6 with GT1
    ])
    ap = average_precision_detection(pred, gt, MAP_IOU_THRESHOLDS)
    # thr .5/.55/.6 (c hits; .6 is an exact boundary): a TP, b FP (GT0 taken), c TP
    #   -> P = [1, 1/2, 2/3], R = [1/2, 1/2, 1] -> AP 5/6
    # thr .65 ... .95: c misses -> a TP, b FP, c FP -> AP = 1/2 * 1 = 1/2
    # With b ranked before a, thr .95 would give b FP, a TP -> AP 1/4: the stable tie order
    # matters.
    expected = [5 / 6] * 3 + [0.5] * 7
    np.testing.assert_allclose(ap, expected)
    assert ap.mean() == pytest.approx(0.6)


def test_ap_detection_claims_best_free_gt_then_falls_back():
    gt = _w([[0, 10], [1, 11]])
    pred = _w([
        [1, 10.5, 0.9],  # p1: tIoU 9/10.5 = .857 with GT0, 9.5/10 = .95 with GT1 -> claims GT1
        [1, 11, 0.8],    # p2: tIoU 1 with GT1 (taken), 9/11 = .818 with GT0
    ])
    ap = average_precision_detection(pred, gt, MAP_IOU_THRESHOLDS)
    # thr <= .8: p1 -> GT1, p2 -> GT0: AP 1. thr .85/.9/.95 (p1 at .95 is an exact
    # boundary): p1 TP, p2 FP -> AP 1/2. Claiming the first GT above the threshold (GT0)
    # instead of the best one would leave GT1 to p2 and give 1 at .85.
    np.testing.assert_allclose(ap, [1.0] * 7 + [0.5] * 3)


def test_ap_detection_gt_tiou_tie_prefers_later_gt():
    gt = _w([[0, 10], [2, 12]])
    pred = _w([
        [1, 11, 0.9],  # p1: tIoU 9/11 with both GT -> takes GT1 (later index, as moment_detr)
        [2, 12, 0.8],  # p2: tIoU 1 with GT1 (taken), 8/12 = .667 with GT0
    ])
    ap = average_precision_detection(pred, gt, MAP_IOU_THRESHOLDS)
    # thr <= .65: both TP -> 1. thr .7-.8: p1 TP, p2 FP -> 1/2.
    # thr >= .85: p1 misses (.818), p2 -> GT1 -> P = [0, 1/2], R = [0, 1/2] -> 1/4.
    np.testing.assert_allclose(ap, [1.0] * 4 + [0.5] * 3 + [0.25] * 3)


def test_map_threshold_boundary_is_inclusive():
    # tIoU 7/10 == 0.7 exactly: a hit at 0.7 (>=), a miss from 0.75 on.
    ap = average_precision_detection(_w([[0, 7, 1.0]]), _w([[0, 10]]), MAP_IOU_THRESHOLDS)
    np.testing.assert_allclose(ap, [1.0] * 5 + [0.0] * 5)


def test_map_thresholds_are_rounded_like_moment_detr():
    # 1.26 / 1.4 evaluates to 0.8999999999999999: below moment_detr's 0.9 (it rounds its
    # thresholds to 2 decimals) but not below np.linspace's 0.8999999999999999.
    assert MAP_IOU_THRESHOLDS[8] == 0.9
    ap = average_precision_detection(_w([[0, 1.26, 1.0]]), _w([[0, 1.4]]), MAP_IOU_THRESHOLDS)
    np.testing.assert_allclose(ap, [1.0] * 8 + [0.0] * 2)


def test_ap_detection_no_prediction_is_zero():
    assert np.array_equal(average_precision_detection(np.zeros((0, 3)), _w([[0, 1]])),
                          np.zeros(10))


def test_moment_retrieval_map_truncates_after_sorting():
    # The only correct window has the lowest score but is listed first.
    pred = _w([[0, 10, 0.1]] + [[50, 60, 0.5]] * 10)
    gt = _w([[0, 10]])
    # Top-10 by score are all wrong -> AP 0.
    assert np.array_equal(moment_retrieval_map([pred], [gt], max_windows=10), np.zeros(10))
    # With 11 kept, the hit is 11th: P = 1/11 at R = 1 -> AP 1/11 at every threshold.
    np.testing.assert_allclose(moment_retrieval_map([pred], [gt], max_windows=11),
                               np.full(10, 1 / 11))


# ----------------------------------------------------------------------------- buckets


def test_filter_by_length_rules():
    gts = [_w([[0, 10]]), _w([[0, 10.5], [20, 60]]), _w([[5, 5]]), _w([[0, 200]])]
    assert filter_by_length(gts, LENGTH_BUCKETS['short'])[0] == [0]  # 10 is in (0, 10]
    keep, kept = filter_by_length(gts, LENGTH_BUCKETS['middle'])
    assert keep == [1] and np.array_equal(kept[0], _w([[0, 10.5]]))  # the 40 s window goes
    keep, kept = filter_by_length(gts, LENGTH_BUCKETS['long'])
    assert keep == [1] and np.array_equal(kept[0], _w([[20, 60]]))
    # The zero-length window (not > 0) and the 200 s window (> 150) are in no bucket.


def _bucket_case():
    gts = [
        dict(qid=1, relevant_windows=[[0, 10]]),                # short
        dict(qid=2, relevant_windows=[[0, 10.5], [20, 60]]),    # middle + long
        dict(qid=3, relevant_windows=[[5, 5]]),                 # no bucket
        dict(qid=4, relevant_windows=[[0, 200]]),               # no bucket
    ]
    preds = [
        dict(qid=1, pred_relevant_windows=[[0, 10, 1.0]]),
        dict(qid=2, pred_relevant_windows=[[0, 10.5, 0.9], [20, 60, 0.8]]),
        dict(qid=3, pred_relevant_windows=[[5, 5, 1.0]]),
        dict(qid=4, pred_relevant_windows=[[0, 100, 1.0]]),
    ]
    return preds, gts


def test_eval_moment_retrieval_buckets_keep_all_predictions():
    preds, gts = _bucket_case()
    out = eval_moment_retrieval(preds, gts)
    # Full: q1 AP 1; q2 both windows hit -> 1; q3 zero-length tIoU 0 -> 0;
    # q4 tIoU 100/200 = .5 -> 1 at .5 only -> 0.1. mAP = 2.1 / 4.
    assert out['mAP'] == pytest.approx(52.5)
    assert out['mAP@0.5'] == pytest.approx(75.0)   # q1, q2, q4 hit at .5
    assert out['mAP@0.75'] == pytest.approx(50.0)  # q1, q2
    assert out['mAP_short'] == pytest.approx(100.0)
    # Middle keeps q2 with GT [0,10.5] but both predictions: TP then FP -> AP 1.
    assert out['mAP_middle'] == pytest.approx(100.0)
    # Long keeps q2 with GT [20,60]: FP ([0,10.5], higher score) then TP -> P = 1/2 -> AP .5.
    assert out['mAP_long'] == pytest.approx(50.0)
    # top-1 tIoUs: 1, 1, 0, .5 -> R1@.3 = R1@.5 = 75, R1@.7 = 50, mIoU = 2.5 / 4.
    assert out['R1@0.3'] == pytest.approx(75.0)
    assert out['R1@0.5'] == pytest.approx(75.0)
    assert out['R1@0.7'] == pytest.approx(50.0)
    assert out['mIoU'] == pytest.approx(62.5)
    assert set(out) == {'R1@0.3', 'R1@0.5', 'R1@0.7', 'mIoU', 'mAP', 'mAP@0.5', 'mAP@0.75',
                        'mAP_short', 'mAP_middle', 'mAP_long'}


def test_eval_moment_retrieval_drops_empty_buckets():
    preds, gts = _bucket_case()
    out = eval_moment_retrieval(preds[:1], gts[:1])
    assert 'mAP_short' in out and 'mAP_middle' not in out and 'mAP_long' not in out
    assert all(np.isfinite(v) for v in out.values())


@pytest.mark.parametrize('preds, gts, match', [
    ([dict(qid='a', pred_relevant_windows=[[5, 1, 1.0]])],
     [dict(qid='a', relevant_windows=[[0, 1]])], r"qid='a'.*end < start"),
    ([dict(qid='a', pred_relevant_windows=[[0, 1, 1.0]])],
     [dict(qid='a', relevant_windows=[[3, 2]])], r"qid='a'.*end < start"),
    ([dict(qid=7, pred_relevant_windows=[[0, 1, 1.0]])],
     [dict(qid=8, relevant_windows=[[0, 1]])], r'prediction qid=7 has no ground truth'),
    ([dict(qid=7, pred_relevant_windows=[[0, 1, 1.0]]),
      dict(qid=8, pred_relevant_windows=[[0, 1, 1.0]])],
     [dict(qid=7, relevant_windows=[[0, 1]]), dict(qid=8, relevant_windows=[[0, 1]]),
      dict(qid=9, relevant_windows=[[0, 1]])], r'ground-truth qid=9 has no prediction'),
    ([dict(qid=7, pred_relevant_windows=[[0, 1, 1.0]])],
     [dict(qid=7, relevant_windows=[])], r'qid=7: ground truth has no relevant window'),
    ([dict(qid=7, pred_relevant_windows=[[0, 1]])],
     [dict(qid=7, relevant_windows=[[0, 1]])], r'qid=7.*\[start, end, score\]'),
    ([dict(qid=7, pred_relevant_windows=[[0, 1, float('nan')]])],
     [dict(qid=7, relevant_windows=[[0, 1]])], r'qid=7.*NaN'),
    ([dict(qid=7, pred_relevant_windows=[[0, 1, 1.0]])] * 2,
     [dict(qid=7, relevant_windows=[[0, 1]])], r'qid=7 appears twice'),
    ([], [], r'no queries'),
])
def test_eval_moment_retrieval_rejects_malformed_input(preds, gts, match):
    with pytest.raises(ValueError, match=match):
        eval_moment_retrieval(preds, gts)


# ----------------------------------------------------------------------------- randomized


def _plain_iou(a, b):
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union > 0 else 0.0


def _plain_query_ap(pred, gt, thr, max_windows):
    """One query's AP at one threshold, by the textbook definition, with loops only."""
    ranked = sorted(pred, key=lambda w: -w[2])[:max_windows]  # sorted() is stable
    taken = [False] * len(gt)
    is_tp = []
    for w in ranked:
        best, best_iou = None, -1.0
        for j, g in enumerate(gt):
            iou = _plain_iou(w, g)
            # best free GT passing the threshold; '>=' lets a later GT win a tIoU tie
            if not taken[j] and iou >= thr and iou >= best_iou:
                best, best_iou = j, iou
        if best is not None:
            taken[best] = True
        is_tp.append(best is not None)
    precision, n_tp = [], 0
    for i, t in enumerate(is_tp):
        n_tp += t
        precision.append(n_tp / (i + 1))
    # each TP adds 1/len(gt) recall, weighted by the best precision at that recall or later
    return sum(max(precision[i:]) / len(gt) for i, t in enumerate(is_tp) if t)


def _plain_eval(preds, gts, max_windows=10):
    thresholds = [0.5 + 0.05 * k for k in range(10)]
    thresholds = [round(t, 2) for t in thresholds]
    gt_by_qid = {g['qid']: g['relevant_windows'] for g in gts}
    out = {}
    top1 = []
    for p in preds:
        ranked = sorted(p['pred_relevant_windows'], key=lambda w: -w[2])
        ious = [_plain_iou(ranked[0], g) for g in gt_by_qid[p['qid']]] if ranked else [0.0]
        top1.append(max(ious))
    for m in (0.3, 0.5, 0.7):
        out[f'R1@{m}'] = 100 * sum(v >= m for v in top1) / len(top1)
    out['mIoU'] = 100 * sum(top1) / len(top1)

    def bucket_map(lo, hi):
        per_thr = []
        for thr in thresholds:
            aps = []
            for p in preds:
                gt = [g for g in gt_by_qid[p['qid']] if lo is None or lo < g[1] - g[0] <= hi]
                if gt:
                    aps.append(_plain_query_ap(p['pred_relevant_windows'], gt, thr,
                                               max_windows))
            if not aps:
                return None
            per_thr.append(sum(aps) / len(aps))
        return per_thr

    full = bucket_map(None, None)
    out['mAP'] = 100 * sum(full) / len(full)
    out['mAP@0.5'] = 100 * full[0]
    out['mAP@0.75'] = 100 * full[5]
    for name, (lo, hi) in (('short', (0, 10)), ('middle', (10, 30)), ('long', (30, 150))):
        res = bucket_map(lo, hi)
        if res is not None:
            out[f'mAP_{name}'] = 100 * sum(res) / len(res)
    return out


def _random_case(rng, num_queries):
    preds, gts = [], []
    for q in range(num_queries):
        gt = []
        for _ in range(rng.integers(1, 4)):
            s = float(rng.integers(0, 60))
            # lengths on an integer grid so that bucket edges (10, 30) and tIoU ties occur
            gt.append([s, s + float(rng.choice([0, 5, 10, 11, 20, 30, 31, 60]))])
        pred = []
        for _ in range(rng.integers(0, 14)):
            if rng.random() < 0.5:
                s, e = gt[rng.integers(len(gt))]
                s = max(0.0, s + float(rng.integers(-3, 4)))
                e = max(s, e + float(rng.integers(-3, 4)))
            else:
                s = float(rng.integers(0, 80))
                e = s + float(rng.integers(0, 40))
            pred.append([s, e, float(rng.integers(0, 4)) / 4])  # frequent score ties
        preds.append(dict(qid=q, pred_relevant_windows=pred))
        gts.append(dict(qid=q, relevant_windows=gt))
    return preds, gts


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_eval_moment_retrieval_matches_plain_rederivation(seed):
    preds, gts = _random_case(np.random.default_rng(seed), num_queries=60)
    got = eval_moment_retrieval(preds, gts)
    expected = _plain_eval(preds, gts)
    assert got.keys() == expected.keys()
    for k in expected:
        assert got[k] == pytest.approx(expected[k], abs=1e-9), k


# ----------------------------------------------------------------------------- highlights


def test_saliency_matrix_fills_relevant_clips():
    m = saliency_matrix(10, [1, 3], [[4, 2, 0], [1, 4, 2]], clip_length=2)
    expected = np.zeros((5, 3))
    expected[1] = [4, 2, 0]
    expected[3] = [1, 4, 2]
    assert np.array_equal(m, expected)
    with pytest.raises(ValueError, match=r'qid=5.*\[0, 5\)'):
        saliency_matrix(10, [5], [[1, 1, 1]], clip_length=2, qid=5)


def test_highlight_ap_groups_tied_scores():
    # Ranking: .9 {neg}, .5 {pos, neg} (tie), .1 {neg}. The tied level has precision 1/3 and
    # reaches full recall -> AP 1/3. Breaking the tie with the positive first would give 1/2.
    y_true = [0, 0, 1, 0]
    y_score = [0.9, 0.5, 0.5, 0.1]
    assert highlight_average_precision(y_true, y_score) == pytest.approx(1 / 3)
    assert highlight_average_precision(y_true, [0.9, 0.5, 0.6, 0.1]) == pytest.approx(1 / 2)


def test_highlight_ap_mean_over_levels_not_recall_weighted():
    # Levels: .9 {pos} P=1; .5 {pos, pos, neg} P=3/4; .1 {neg}. Plain mean over the 2 levels
    # that add positives: (1 + 3/4) / 2 = 7/8 (recall-weighted area would be 1/3 + 2/3*3/4).
    y_true = [1, 1, 1, 0, 0]
    y_score = [0.9, 0.5, 0.5, 0.5, 0.1]
    assert highlight_average_precision(y_true, y_score) == pytest.approx(7 / 8)


def test_highlight_ap_degenerate_labels():
    assert highlight_average_precision([0, 0, 0], [3, 2, 1]) == 0.0
    assert highlight_average_precision([1, 1], [0, 5]) == 1.0


def _plain_hd_ap(y_true, y_score):
    if all(v == y_true[0] for v in y_true):
        return float(y_true[0])
    levels = sorted(set(y_score), reverse=True)
    points = []  # (recall, precision, new positives) per score level, highest first
    n_pos = sum(y_true)
    for lv in levels:
        tp = sum(t for t, s in zip(y_true, y_score) if s >= lv)
        n = sum(1 for s in y_score if s >= lv)
        points.append((tp / n_pos, tp / n))
    vals, prev_recall = [], 0.0
    for r, _ in points:
        if r > prev_recall:
            vals.append(max(p for r2, p in points if r2 >= r))
        prev_recall = r
    return sum(vals) / len(vals)


def test_eval_highlight_matches_plain_rederivation():
    rng = np.random.default_rng(3)
    preds, gts = [], []
    for q in range(40):
        duration = float(rng.integers(4, 30)) * 2 + float(rng.integers(0, 2))  # odd seconds too
        num_clips = int(duration / 2)
        ids = sorted(rng.choice(num_clips, size=rng.integers(1, num_clips + 1), replace=False))
        scores = rng.integers(0, 5, size=(len(ids), 3)).tolist()
        # prediction length off by up to 2 clips, integer scores for ties
        pred = rng.integers(0, 4, size=max(1, num_clips + rng.integers(-2, 3))).astype(float)
        preds.append(dict(qid=q, pred_saliency_scores=pred.tolist()))
        gts.append(dict(qid=q, duration=duration, relevant_clip_ids=[int(i) for i in ids],
                        saliency_scores=scores))
    got = eval_highlight(preds, gts)

    for name, min_score in (('Fair', 2), ('Good', 3), ('VeryGood', 4)):
        hits, aps = [], []
        for p, g in zip(preds, gts):
            num_clips = int(g['duration'] / 2)
            full = [[0, 0, 0] for _ in range(num_clips)]
            for i, s in zip(g['relevant_clip_ids'], g['saliency_scores']):
                full[i] = s
            score = p['pred_saliency_scores']
            top = score.index(max(score))
            hits.append(top < num_clips and any(v >= min_score for v in full[top]))
            fitted = (score + [0.0] * num_clips)[:num_clips]
            for a in range(3):
                aps.append(_plain_hd_ap([int(full[c][a] >= min_score) for c in range(num_clips)],
                                        fitted))
        assert got[f'HL-min-{name}-mAP'] == pytest.approx(100 * sum(aps) / len(aps), abs=1e-9)
        assert got[f'HL-min-{name}-Hit1'] == pytest.approx(100 * sum(hits) / len(hits),
                                                            abs=1e-9)
