"""read_charades.py and read_activitynet.py: they build with random weights (READ in the
last 4 blocks of both ViT-B/32 towers, PVLA) and read the real annotation files (from
../shared, skipped when absent)."""
import os.path as osp
import warnings

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmvpeft.datasets  # noqa: F401  (registers the datasets)
from mmvpeft.registry import DATASETS, MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CASES = {
    'charades': [('train_dataloader', 'charades/charades_train_release.jsonl', 12404),
                 ('val_dataloader', 'charades/charades_test_release.jsonl', 3720)],
    'activitynet': [('val_dataloader', 'activitynet/activitynet_val_release.jsonl', 17505)],
}


def _cfg(name):
    return Config.fromfile(osp.join(REPO, 'configs', f'read_{name}.py'))


@pytest.mark.parametrize('name', sorted(CASES))
def test_builds_with_random_weights(name):
    cfg = _cfg(name)
    init_default_scope('mmvpeft')
    for key in ('video_backbone', 'text_backbone'):
        cfg.model[key].pretrained = None  # no hub here
    model = MODELS.build(cfg.model)
    assert set(model.loss_keys) == {'loss_cls', 'loss_reg', 'loss_iou', 'loss_pvla'}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    tower = [n for n in trainable if n.startswith(('video_backbone', 'text_backbone'))]
    assert tower and all('read_adapter' in n for n in tower)
    blocks = {n.split('.resblocks.')[1].split('.')[0] for n in tower}
    assert blocks == {'8', '9', '10', '11'}  # the last 4 of 12 blocks
    assert cfg.val_evaluator['type'] == 'MomentRetrievalMetric'
    assert cfg.default_hooks.checkpoint.save_best == 'R1@0.5'


@pytest.mark.parametrize('name', sorted(CASES))
def test_reads_the_real_annotation_files(name, shared_annotations):
    cfg = _cfg(name)
    for loader, rel, count in CASES[name]:
        ds_cfg = cfg[loader].dataset
        assert ds_cfg.ann_file == 'annotations/' + osp.basename(rel)
        ds_cfg.update(ann_file=osp.join(shared_annotations, rel), pipeline=[])
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # ActivityNet: 5 windows past the end, clipped
            dataset = DATASETS.build(ds_cfg)
        assert len(dataset) == count
        for i in (0, len(dataset) - 1):
            info = dataset.get_data_info(i)
            assert info['query'] == info['query'].strip() and info['query']
            windows = torch.as_tensor(info['gt_windows'])
            assert windows.ndim == 2 and windows.shape[1] == 2
            assert (windows[:, 0] >= 0).all() and (windows[:, 1] <= info['duration']).all()
            assert info['video_path'].endswith(info['vid'] + '.mp4')
