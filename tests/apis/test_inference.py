"""The inference API and tools/demo.py on synthetic videos with a tiny random CLIP."""
import glob
import json
import math
import os.path as osp

import cv2
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmvpeft  # noqa: F401
from mmvpeft.apis import init_grounder
from mmvpeft.datasets import generate_synthetic_videos
from mmvpeft.registry import MODELS
from mmvpeft.utils.adapter_io import save_adapter
from mmvpeft.visualization import draw_timeline

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO_ROOT, 'configs', 'demo', 'read_demo.py')


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('videos'))
    ann = generate_synthetic_videos(root, num_videos=2, duration=8.0, fps=4, size=(64, 64))
    with open(ann) as f:
        records = [json.loads(line) for line in f]
    return root, records


@pytest.fixture(scope='module')
def adapter(tmp_path_factory):
    """A 'trained' read_demo model: perturbed adapters and head, saved as safetensors."""
    cfg = Config.fromfile(CONFIG)
    init_default_scope('mmvpeft')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    path = str(tmp_path_factory.mktemp('ckpt') / 'adapter_latest.safetensors')
    return save_adapter(model, path, cfg), model


def test_predict_returns_ranked_windows_in_seconds_and_saliency(videos, adapter):
    root, records = videos
    path, trained = adapter
    torch.manual_seed(123)  # the caller's RNG state does not choose the frozen base
    grounder = init_grounder(None, path, device='cpu')
    video = osp.join(root, 'videos', records[0]['vid'] + '.mp4')
    result = grounder.predict(video, records[0]['query'])
    assert result['duration'] == pytest.approx(8.0)
    assert result['clip_len'] == 1.0 and len(result['saliency']) == 8
    assert 1 <= len(result['windows']) <= 10
    scores = [w[2] for w in result['windows']]
    assert scores == sorted(scores, reverse=True)
    assert all(0 <= s < e <= 8.0 for s, e, _ in result['windows'])
    assert all(0 <= v <= 1 for v in result['saliency'])
    # the adapter weights are what the model predicts with, exactly
    for name, p in trained.named_parameters():
        if p.requires_grad:
            assert torch.equal(dict(grounder.model.named_parameters())[name], p), name

    pairs = [(osp.join(root, 'videos', r['vid'] + '.mp4'), r['query']) for r in records]
    batch = grounder.predict_batch(pairs, batch_size=2)
    assert len(batch) == len(pairs)
    for (v, q), got in zip(pairs, batch):
        single = grounder.predict(v, q)
        assert torch.allclose(torch.tensor(got['windows']), torch.tensor(single['windows']),
                              atol=1e-5)
        assert got['saliency'] == pytest.approx(single['saliency'], abs=1e-5)

    with pytest.raises(FileNotFoundError, match='nothere.mp4'):
        grounder.predict(osp.join(root, 'nothere.mp4'), 'x')


def test_feature_configs_are_refused_with_a_pointer(tmp_path):
    cfg = osp.join(REPO_ROOT, 'configs', 'demo', 'grounding_demo.py')
    with pytest.raises(ValueError, match='extract_features'):
        init_grounder(cfg, None, device='cpu')


def test_demo_tool_writes_a_timeline_png(videos, adapter, tmp_path, load_tool, capsys):
    root, records = videos
    path, _ = adapter
    rec = records[0]
    out = tmp_path / 'timeline.png'
    s, e = rec['relevant_windows'][0]
    load_tool('demo').main([osp.join(root, 'videos', rec['vid'] + '.mp4'), rec['query'],
                            '--config', CONFIG, '--checkpoint', path, '--out', str(out),
                            '--gt', str(s), str(e), '--device', 'cpu'])
    printed = capsys.readouterr().out
    assert '1. ' in printed and 'score' in printed and str(out) in printed
    img = cv2.imread(str(out))
    assert img is not None and img.shape[1] == 960 and img.shape[0] > 200
    # thumbnails, windows and the curve put colour on the white canvas
    assert (img != 255).any(axis=2).mean() > 0.05


def test_draw_timeline_marks_windows_where_they_are():
    img = draw_timeline(10.0, [[2.0, 4.0, 0.9]], [0.1] * 10, 1.0, gt_windows=[[6.0, 8.0]],
                        query='q', top_k=1)
    x0, x1 = 16 + 70, 960 - 16
    row = img[30 + 12]  # middle of the first window row (no thumbnails)
    inside, outside = int(x0 + (x1 - x0) * 0.3), int(x0 + (x1 - x0) * 0.7)
    assert tuple(row[inside]) == (60, 110, 230) and tuple(row[outside]) != (60, 110, 230)
    gt_row = img[30 + 22 + 12]
    assert tuple(gt_row[outside]) == (80, 170, 60) and tuple(gt_row[inside]) != (80, 170, 60)
    assert not math.isnan(img.mean())


# ---- inference = training: a short READ-demo training, then the inference path ----------
@pytest.fixture(scope='module')
def read_demo_run(tmp_path_factory, load_tool):
    """Two epochs of the READ demo on 8 generated videos (6 train, 2 val, ~5 val queries);
    returns the work dir, the val annotation file, the options and the last validation."""
    data = str(tmp_path_factory.mktemp('read_data'))
    work = str(tmp_path_factory.mktemp('read_work'))
    gen = dict(num_videos=8, duration=8.0, fps=4, val_ratio=0.25)
    opts = [f'data_root={data}', 'train_cfg.max_epochs=2', 'train_cfg.val_interval=1',
            'default_hooks.checkpoint.interval=1', 'train_dataloader.batch_size=4',
            'default_hooks.logger.interval=1', 'val_evaluator.chance_draws=0']
    for split in ('train', 'val', 'test'):
        opts += [f'{split}_dataloader.dataset.data_root={data}']
        opts += [f'{split}_dataloader.dataset.generator.{k}={v}' for k, v in gen.items()]
    torch.manual_seed(7)  # whatever the RNG state before training, inference must not care
    load_tool('train').main([CONFIG, '--work-dir', work, '--cfg-options', *opts])
    (scalars, ) = glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))
    with open(scalars) as f:
        last_val = [json.loads(line) for line in f if '"R1@0.5"' in line][-1]
    return work, osp.join(data, 'annotations_val.jsonl'), opts, last_val


def _val_through_inference(grounder, ann_file):
    """The val set's metrics computed from ``predict_batch`` (one batch, as validation)."""
    from mmvpeft.evaluation.metrics import MomentRetrievalMetric
    with open(ann_file) as f:
        records = [json.loads(line) for line in f]
    root = osp.dirname(ann_file)
    pairs = [(osp.join(root, 'videos', r['vid'] + '.mp4'), r['query']) for r in records]
    preds = grounder.predict_batch(pairs, batch_size=32)
    metric = MomentRetrievalMetric()
    metric.process(None, [dict(qid=r['qid'], gt_windows=r['relevant_windows'],
                               pred_relevant_windows=p['windows'])
                          for r, p in zip(records, preds)])
    return metric.compute_metrics(metric.results), preds


@pytest.mark.parametrize('ckpt', ['adapter_latest.safetensors', 'epoch_2.pth'])
def test_init_grounder_reproduces_the_last_validation_exactly(read_demo_run, ckpt):
    """No hand seeding: the frozen random towers come from the config's init_seed, so the
    adapter file and the .pth checkpoint both give training's last validation figures."""
    work, ann_file, opts, last_val = read_demo_run
    torch.manual_seed(1234)  # another RNG state than training's: must not matter
    grounder = init_grounder(CONFIG if ckpt.endswith('.pth') else None,
                             osp.join(work, ckpt), device='cpu')
    got, _ = _val_through_inference(grounder, ann_file)
    assert got['R1@0.5'] == last_val['R1@0.5']
    # mIoU and mAP are continuous: equal only when the predictions are the same ones
    for key in ('R1@0.3', 'R1@0.7', 'mIoU', 'mAP'):
        assert got[key] == pytest.approx(last_val[key], abs=1e-4), key


def test_demo_tool_twice_with_the_same_arguments_draws_the_same_windows(
        read_demo_run, tmp_path, load_tool, capsys):
    work, ann_file, _, _ = read_demo_run
    with open(ann_file) as f:
        rec = json.loads(f.readline())
    video = osp.join(osp.dirname(ann_file), 'videos', rec['vid'] + '.mp4')
    demo = load_tool('demo')
    results = []
    for seed in (0, 1):  # different RNG states between the calls
        torch.manual_seed(seed)
        results.append(demo.main([video, rec['query'], '--checkpoint',
                                  osp.join(work, 'adapter_latest.safetensors'), '--out',
                                  str(tmp_path / f'{seed}.png'), '--device', 'cpu']))
    assert results[0]['windows'] == results[1]['windows']
    assert results[0]['saliency'] == results[1]['saliency']
