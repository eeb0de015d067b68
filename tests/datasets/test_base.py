"""datasets/base.py: root joining, paths resolved through data items, datasets that leave
their pipeline as configured."""
import json
import os.path as osp

import numpy as np
import pytest
from mmengine.registry import init_default_scope

from mmvpeft.datasets import join_root, resolve_item_path
from mmvpeft.registry import DATASETS


def test_join_root_and_resolve_item_path(tmp_path):
    assert join_root('/data', 'feats') == osp.join('/data', 'feats')
    assert join_root('/data', '/abs/feats') == '/abs/feats'
    assert join_root('', 'feats') == 'feats' and join_root('/data', None) is None
    assert resolve_item_path(dict(data_root='/data'), 'feats') == osp.join('/data', 'feats')
    assert resolve_item_path(dict(vid='v'), 'feats') == 'feats'  # outside a dataset


def test_grounding_dataset_carries_data_root_and_leaves_its_pipeline_alone(tmp_path):
    init_default_scope('mmvpeft')
    (tmp_path / 'clip').mkdir()
    (tmp_path / 'text').mkdir()
    np.savez(tmp_path / 'clip' / 'v0.npz', features=np.ones((5, 8), np.float32))
    np.savez(tmp_path / 'clip' / 'v1.npz', features=np.ones((5, 8), np.float32))
    np.savez(tmp_path / 'text' / 'qid0.npz', last_hidden_state=np.ones((3, 4), np.float32))
    np.savez(tmp_path / 'text' / 'qid1.npz', last_hidden_state=np.ones((3, 4), np.float32))
    (tmp_path / 'ann.jsonl').write_text(''.join(json.dumps(dict(
        qid=i, query='q', vid=f'v{i}', duration=10.0, relevant_windows=[[1, 2]])) + '\n'
        for i in range(2)))
    pipeline = [dict(type='LoadClipFeatures', feat_dirs='clip'),
                dict(type='LoadTextFeatures', feat_dir='text')]
    ds = DATASETS.build(dict(type='MomentRetrievalDataset', ann_file='ann.jsonl',
                             data_root=str(tmp_path), pipeline=pipeline))
    clip, text = ds.pipeline.transforms
    # built exactly as configured, and the build-time check did not set anything on them
    assert clip.feat_dirs == ['clip'] and clip.dims is None
    assert text.feat_dir == 'text' and text.dim is None
    out = ds[1]
    assert out['data_root'] == str(tmp_path)
    assert out['video_feat_files'] == [osp.join(str(tmp_path), 'clip', 'v1.npz')]
    assert out['text_feat_file'] == osp.join(str(tmp_path), 'text', 'qid1.npz')
    # a folder missing under data_root is named when the dataset is built
    with pytest.raises(FileNotFoundError, match=r'text feature folder not found: .*nowhere'):
        DATASETS.build(dict(type='MomentRetrievalDataset', ann_file='ann.jsonl',
                            data_root=str(tmp_path),
                            pipeline=[dict(type='LoadTextFeatures', feat_dir='nowhere')]))
    # a dims setting that contradicts the files fails at build, naming the folder
    with pytest.raises(ValueError, match=r'clip are 8 wide, but the pipeline sets dims=16'):
        DATASETS.build(dict(type='MomentRetrievalDataset', ann_file='ann.jsonl',
                            data_root=str(tmp_path),
                            pipeline=[dict(type='LoadClipFeatures', feat_dirs='clip',
                                           dims=[16])]))
