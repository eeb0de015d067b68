"""The highlight-detection configs build on the real annotation files, and data_root is the
one knob that points them at a copy of the data."""
import os
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmvpeft  # noqa: F401
from mmvpeft.registry import DATASETS, MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# config -> (shared annotation folder, {split: expected query count})
CASES = {
    'read_qvhighlights.py': ('qvhighlight', dict(train=7218, val=1550, test=1542)),
    'read_youtube.py': ('youtube_highlight', dict(train=233, val=152)),
    'read_tvsum.py': ('tvsum', dict(train=40, val=10)),
}


def _data_root(tmp_path, shared_annotations, folder):
    root = tmp_path / 'my_copy'
    (root / 'annotations').mkdir(parents=True)
    for name in os.listdir(osp.join(shared_annotations, folder)):
        os.symlink(osp.join(shared_annotations, folder, name), root / 'annotations' / name)
    return str(root)


@pytest.mark.parametrize('name', sorted(CASES))
def test_hd_config_builds_on_real_annotations(name, tmp_path, shared_annotations):
    folder, counts = CASES[name]
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', name))
    root = _data_root(tmp_path, shared_annotations, folder)
    init_default_scope('mmvpeft')
    for split, count in counts.items():
        ds_cfg = cfg[f'{split}_dataloader'].dataset
        ds_cfg.data_root = root  # the documented override, one per loader
        ds = DATASETS.build(ds_cfg)
        assert len(ds) == count, split
        info = ds.get_data_info(0)
        assert info['video_path'].startswith(osp.join(root, 'videos') + os.sep)
        if name == 'read_qvhighlights.py' and split != 'test':
            assert info['saliency_scores'] and info['relevant_clip_ids']
        if name != 'read_qvhighlights.py':
            assert info['query'] == info['domain']  # text_source='domain'
            assert info['clip_labels'].shape[0] == info['label_windows'].shape[0]
            assert len(info['gt_windows']) >= 1
            assert (np.diff(info['label_windows'], axis=1) > 0).all()
    # the model builds (random weights: no hub here) and declares its losses
    for key in ('video_backbone', 'text_backbone'):
        cfg.model[key].pretrained = None
    model = MODELS.build(cfg.model)
    assert set(model.loss_keys) == {'loss_cls', 'loss_reg', 'loss_iou', 'loss_pvla'}


def test_youtube_label_windows_follow_the_clip_frames(tmp_path, shared_annotations):
    root = _data_root(tmp_path, shared_annotations, 'youtube_highlight')
    ds = DATASETS.build(dict(type='HighlightDataset', data_root=root, protocol='youtube',
                             ann_file='annotations/youtube_highlight_val_release.jsonl',
                             domains=['dog'], text_source='none'))
    assert len(ds) == 16 and {ds.get_data_info(i)['domain'] for i in range(len(ds))} == {'dog'}
    info = ds.get_data_info(0)  # fXx44D1sqUw: 30 fps, clips of 100 frames, stride 50
    assert info['query'] == ''
    assert info['label_windows'][1].tolist() == pytest.approx([50 / 30, 150 / 30])
    # the last 5 clips are positive: one window from clip 58's start to the last clip's end
    assert info['gt_windows'].shape == (1, 2)
    assert info['gt_windows'][0].tolist() == pytest.approx(
        [info['label_windows'][58, 0], info['label_windows'][62, 1]])
