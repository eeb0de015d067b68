"""MSVD and DiDeMo retrieval configs: they build their datasets (on tiny files in the
CLIP4Clip layout) and default to the v2t protocol of the published figures (clip4clip)."""
import json
import os.path as osp
import pickle

import pytest
import torch
from mmengine.config import Config

import mmvpeft.datasets  # noqa: F401  (registers the datasets)
import mmvpeft.evaluation  # noqa: F401  (registers the metrics)
from mmvpeft.registry import DATASETS, METRICS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture
def layout(tmp_path):
    with open(tmp_path / 'raw-captions.pkl', 'wb') as f:
        pickle.dump({'a': [['a', 'dog', 'runs'], ['a', 'puppy']], 'b': ['two birds']}, f)
    (tmp_path / 'test_list.txt').write_text('a\nb\n')
    (tmp_path / 'test_data.json').write_text(json.dumps([
        dict(video='x.mp4', description='a man walks in', times=[[0, 1]]),
        dict(video='x.mp4', description='he sits down', times=[[1, 2]])]))
    return tmp_path


@pytest.mark.parametrize('name, captions', [
    ('msvd', [['a dog runs', 'a puppy'], ['two birds']]),
    ('didemo', [['a man walks in he sits down']]),   # paragraph-to-video
])
def test_config_builds_and_uses_clip4clip_protocol(name, captions, layout):
    cfg = Config.fromfile(osp.join(REPO, 'configs', f'tokenmix_{name}_retrieval.py'))
    assert cfg.test_evaluator['protocol'] == 'clip4clip'
    assert cfg.val_evaluator['protocol'] == 'clip4clip'
    metric = METRICS.build(cfg.test_evaluator)
    assert metric.protocol == 'clip4clip'
    ds_cfg = cfg.test_dataloader.dataset
    ds_cfg.update(data_root=str(layout), pipeline=[], check_files=False)
    dataset = DATASETS.build(ds_cfg)
    assert [dataset.get_data_info(i)['captions'] for i in range(len(dataset))] == captions
    # the built metric computes the clip4clip v2t: video 0 (2 captions) vs video 1
    metric.process(None, [
        dict(vid='a', video_embed=torch.tensor([1.0, 0.0]),
             text_embeds=torch.tensor([[0.2, 0.9], [0.9, 0.1]]), caption_ids=[0, 1]),
        dict(vid='b', video_embed=torch.tensor([0.0, 1.0]),
             text_embeds=torch.tensor([[0.5, 0.6]]), caption_ids=[2])])
    out = metric.compute_metrics(metric.results)
    # groups: G = [[0.9, 0.9], [0.5, 0.6]]: video 1's own group 0.6 < 0.9 -> rank 2
    assert out['v2t/MnR'] == pytest.approx(1.5)
