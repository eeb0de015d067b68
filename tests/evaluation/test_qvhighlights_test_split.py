"""The QVHighlights test split, scored through the documented command on the real
``highlight_test_with_gt.jsonl`` (the test ground truth its authors released after the
evaluation server shut down). Skipped when ../shared is absent."""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from mmengine.config import Config

from mmvpeft.evaluation.functional.submission import eval_submission, load_jsonl

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def test_gt_file(shared_annotations):
    path = osp.join(shared_annotations, 'qvhighlight', 'highlight_test_with_gt.jsonl')
    if not osp.isfile(path):
        pytest.skip(f'{path} not found (the released QVHighlights test ground truth)')
    return path


def _predictions(gts, oracle):
    """An oracle (GT windows, GT saliency) or a noisy submission, moment_detr-style."""
    rng = np.random.default_rng(0)
    preds = []
    for g in gts:
        if oracle:
            windows = [[s, e, 1.0 - 0.01 * k] for k, (s, e) in enumerate(g['relevant_windows'])]
        else:
            s, e = g['relevant_windows'][0]
            windows = sorted(([s + rng.uniform(-4, 1), e + rng.uniform(-1, 12), rng.uniform()]
                              for _ in range(10)), key=lambda w: -w[2])
        num_clips = int(round(g['duration'] / 2))
        saliency = np.zeros(num_clips) if oracle else rng.uniform(size=num_clips)
        if oracle:
            saliency[g['relevant_clip_ids']] = np.asarray(g['saliency_scores']).min(1)
        preds.append(dict(qid=g['qid'], vid=g['vid'], pred_relevant_windows=windows,
                          pred_saliency_scores=saliency.tolist()))
    return preds


def _run_documented_command(pred_file, gt_file, out_file):
    # the command docs/evaluation.md and configs/read_qvhighlights_test.py give
    cmd = [sys.executable, osp.join(REPO, 'tools', 'eval_moments.py'), str(pred_file),
           '--gt', gt_file, '--out', str(out_file), '--decimals', '-1']
    env = dict(__import__('os').environ, PYTHONPATH=REPO)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(out_file.read_text()), done.stderr


def test_oracle_scores_100_on_every_test_query(test_gt_file, tmp_path):
    gts = load_jsonl(test_gt_file, 'ground truth')
    assert len(gts) == 1542  # 1,542 records (the file's last line has no newline)
    pred_file = tmp_path / 'oracle.jsonl'
    pred_file.write_text(''.join(json.dumps(p) + '\n' for p in _predictions(gts, True)))
    metrics, _ = _run_documented_command(pred_file, test_gt_file, tmp_path / 'm.json')
    assert metrics['full']['MR-full']['num_queries'] == len(gts)
    for key in ('MR-full-R1@0.7', 'MR-full-mIoU'):
        assert metrics['brief'][key] == pytest.approx(100.0), key
    # mAP reads 10 windows per query: the 12 queries with more GT windows than that lose
    # recall (AP = 10 / num_gt), everything else is exact
    expected_ap = np.mean([min(1.0, 10 / len(g['relevant_windows'])) for g in gts])
    assert metrics['brief']['MR-full-mAP'] == pytest.approx(100 * expected_ap)
    # saliency = the annotators' minimum, so each annotator's top clip is nearly always Fair
    assert metrics['brief']['HL-min-Fair-Hit1'] > 99  # 99.48: min(annotators) ranking
    assert metrics['brief']['HL-min-Fair-mAP'] > 90  # 93.28


def test_noisy_submission_matches_the_functional_api(test_gt_file, tmp_path):
    gts = load_jsonl(test_gt_file, 'ground truth')
    preds = _predictions(gts, False)
    pred_file = tmp_path / 'noisy.jsonl'
    pred_file.write_text(''.join(json.dumps(p) + '\n' for p in preds))
    metrics, stderr = _run_documented_command(pred_file, test_gt_file, tmp_path / 'm.json')
    assert stderr.count('outside [0, duration]') == 1  # windows past the end: one warning
    with pytest.warns(UserWarning):
        expected = eval_submission(load_jsonl(str(pred_file)), gts)
    assert metrics == json.loads(json.dumps(expected))
    assert 0 < metrics['brief']['MR-full-mAP'] < 100
    assert 0 < metrics['brief']['HL-min-VeryGood-mAP'] < 100


def test_config_points_the_test_loader_at_the_released_ground_truth(test_gt_file):
    from mmvpeft.registry import DATASETS
    import mmvpeft.datasets  # noqa: F401  (registers the datasets)
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'read_qvhighlights_test.py'))
    ds_cfg = cfg.test_dataloader.dataset
    assert ds_cfg.ann_file.endswith('highlight_test_with_gt.jsonl')
    assert {m['type'] for m in cfg.test_evaluator} >= {'MomentRetrievalMetric',
                                                       'HighlightMetric'}
    ds_cfg.update(ann_file=test_gt_file, pipeline=[])
    dataset = DATASETS.build(ds_cfg)
    assert len(dataset) == 1542
    info = dataset.get_data_info(0)
    assert len(info['gt_windows']) and len(info['saliency_scores'])
