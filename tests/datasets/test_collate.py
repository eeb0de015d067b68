"""Collate functions named by batch shape, and the data contract end to end.

The last tests run one item of every demo config through its train and val pipelines and its
collate function (synthetic data written into a temporary folder) and check the contract of
``mmvpeft/datasets/transforms/formatting.py``: ``imgs (B, T, K, 3, H, W)`` (or
``video_feat (B, T, D)``), accepted as is by the config's vision backbone.
"""
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmvpeft.datasets import (caption_collate, moment_collate, retrieval_collate,
                              video_captions_collate, video_query_collate)
from mmvpeft.datasets.collate import collate_context, pad_sequences
from mmvpeft.registry import DATASETS, FUNCTIONS, MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMOS = sorted(glob.glob(osp.join(REPO, 'configs', 'demo', '*_demo.py')))


def query_item(t, length, qid, k=1, context=None):
    inputs = dict(imgs=torch.full((t, k, 3, 4, 4), qid, dtype=torch.uint8),
                  text_tokens=torch.arange(1, length + 1),
                  text_mask=torch.ones(length, dtype=torch.bool))
    if context is not None:
        inputs['context_tokens'] = torch.full(context, 7)
        inputs['context_mask'] = torch.ones(context, dtype=torch.bool)
    return dict(inputs=inputs, data_samples=dict(qid=qid))


def captions_item(t, lengths, vid, context=None):
    c, length = len(lengths), max(lengths)
    mask = torch.arange(length)[None] < torch.tensor(lengths)[:, None]
    inputs = dict(imgs=torch.ones((t, 1, 3, 4, 4), dtype=torch.uint8),
                  text_tokens=torch.where(mask, 5, 0), text_mask=mask)
    if context is not None:
        inputs['context_tokens'] = torch.full(context, 7)
        inputs['context_mask'] = torch.ones(context, dtype=torch.bool)
    return dict(inputs=inputs, data_samples=dict(vid=vid, caption_ids=list(range(c))))


def test_old_names_are_aliases_in_code_and_registry():
    assert moment_collate is video_query_collate
    assert retrieval_collate is caption_collate is video_captions_collate
    for old, new in (('moment_collate', video_query_collate),
                     ('retrieval_collate', video_captions_collate),
                     ('caption_collate', video_captions_collate)):
        assert FUNCTIONS.get(f'mmvpeft.{old}') is new
    assert FUNCTIONS.get('mmvpeft.video_query_collate') is video_query_collate
    assert FUNCTIONS.get('mmvpeft.video_captions_collate') is video_captions_collate


def test_pad_sequences():
    out, mask = pad_sequences([torch.ones(2, 3), torch.full((4, 3), 2.)], pad_value=-1)
    assert out.shape == (2, 4, 3)
    assert mask.tolist() == [[True, True, False, False], [True] * 4]
    assert (out[0, 2:] == -1).all() and (out[1] == 2).all()


def test_video_query_collate_keeps_k_and_pads_t_and_text():
    batch = video_query_collate([query_item(3, 4, 1, k=2), query_item(5, 2, 2, k=2)])
    inp = batch['inputs']
    assert inp['imgs'].shape == (2, 5, 2, 3, 4, 4) and inp['imgs'].dtype == torch.uint8
    assert inp['video_mask'].tolist() == [[True] * 3 + [False] * 2, [True] * 5]
    assert (inp['imgs'][0, 3:] == 0).all() and (inp['imgs'][1] == 2).all()
    assert inp['text_tokens'].tolist() == [[1, 2, 3, 4], [1, 2, 0, 0]]
    assert inp['text_mask'].tolist() == [[True] * 4, [True, True, False, False]]
    assert 'context_tokens' not in inp
    assert batch['data_samples'] == [dict(qid=1), dict(qid=2)]


def test_video_query_collate_features_and_context():
    items = [dict(inputs=dict(video_feat=torch.ones(n, 6), text_feat=torch.ones(m, 5)),
                  data_samples=dict(qid=n)) for n, m in ((2, 3), (4, 1))]
    inp = video_query_collate(items)['inputs']
    assert inp['video_feat'].shape == (2, 4, 6) and inp['text_feat'].shape == (2, 3, 5)
    assert inp['video_mask'].sum(1).tolist() == [2, 4]
    assert inp['text_mask'].sum(1).tolist() == [3, 1]
    ctx = video_query_collate([query_item(2, 3, 1, context=(2, 4)),
                               query_item(2, 3, 2, context=(1, 3))])['inputs']
    assert ctx['context_tokens'].shape == (2, 2, 4)
    assert ctx['context_mask'][1].tolist() == [[True] * 3 + [False], [False] * 4]


def test_video_captions_collate_concatenates_captions():
    batch = video_captions_collate([captions_item(2, [3, 2], 'a'), captions_item(4, [5], 'b')])
    inp = batch['inputs']
    assert inp['imgs'].shape == (2, 4, 1, 3, 4, 4)
    assert inp['video_mask'].sum(1).tolist() == [2, 4]
    assert inp['text_tokens'].shape == (3, 5) and inp['text_tokens'].dtype == torch.int64
    assert inp['text_mask'].sum(1).tolist() == [3, 2, 5]
    assert inp['text_video_index'].tolist() == [0, 0, 1]
    assert 'context_tokens' not in inp
    with_ctx = video_captions_collate([captions_item(2, [3], 'a', context=(2, 4)),
                                       captions_item(2, [3], 'b', context=(3, 2))])['inputs']
    assert with_ctx['context_tokens'].shape == (2, 3, 4)
    assert with_ctx['context_mask'].sum((1, 2)).tolist() == [8, 6]


def test_collate_errors_name_the_items():
    with pytest.raises(ValueError, match='empty batch'):
        video_captions_collate([])
    with pytest.raises(ValueError, match='empty batch'):
        video_query_collate([])
    a, b = query_item(2, 3, 1), query_item(2, 3, 2)
    b['inputs']['imgs'] = torch.zeros(2, 1, 3, 4, 5, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"different frame shapes.*'qid': 2"):
        video_query_collate([a, b])
    b = query_item(2, 3, 2)
    b['inputs']['video_feat'] = b['inputs'].pop('imgs').flatten(1).float()
    with pytest.raises(KeyError, match='qid.*2.*no "imgs" while others'):
        video_query_collate([a, b])
    with pytest.raises(KeyError, match='qid.*1.*no video input'):
        video_query_collate([dict(inputs=dict(text_tokens=torch.ones(2)),
                                  data_samples=dict(qid=1))])
    with pytest.raises(KeyError, match='vid.*b.*no context_tokens'):
        collate_context([captions_item(2, [3], 'a', context=(1, 3)), captions_item(2, [3], 'b')],
                        dict(inputs={}))


# -- the contract through every demo config ----------------------------------------------

# Small synthetic sets: the demo's generator with fewer videos.
SMALL = {'SyntheticMomentDataset': dict(num_train_videos=4, num_val_videos=2),
         'SyntheticVideoMomentDataset': dict(num_videos=4, val_ratio=0.5),
         'SyntheticRetrievalDataset': dict(num_train=2, num_val=2),
         'SyntheticQADataset': dict(num_train=2, num_val=2),
         'SyntheticSummarizationDataset': dict(num_train=2, num_val=2)}


def _dataset_cfg(loader_cfg, root):
    ds = dict(loader_cfg['dataset'])
    assert ds['type'] in SMALL, f'add {ds["type"]} to SMALL in {__file__}'
    ds['data_root'] = root
    ds['generator'] = dict(ds.get('generator') or {}, **SMALL[ds['type']])
    return ds


@pytest.mark.parametrize('config', DEMOS, ids=[osp.basename(p) for p in DEMOS])
def test_demo_pipelines_and_collate_follow_the_contract(config, tmp_path):
    cfg = Config.fromfile(config)
    init_default_scope('mmvpeft')
    vision = cfg.model.get('video_backbone')
    backbone = MODELS.build(vision).eval() if vision else None
    for split in ('train_dataloader', 'val_dataloader'):
        loader = cfg[split]
        dataset = DATASETS.build(_dataset_cfg(loader, str(tmp_path / 'data')))
        collate = FUNCTIONS.get(loader['collate_fn']['type'])
        assert collate in (video_query_collate, video_captions_collate), \
            f'{config}: {split} uses {loader["collate_fn"]["type"]}, not a batch-shape collate'
        items = [dataset[0], dataset[1]]
        for item in items:  # per item: (T, K, 3, H, W) or (T, D)
            video = item['inputs'].get('imgs', item['inputs'].get('video_feat'))
            assert video is not None, f'{config} {split}: no imgs / video_feat'
            assert video.ndim == (5 if 'imgs' in item['inputs'] else 2)
        inputs = collate(items)['inputs']
        if backbone is None:
            assert inputs['video_feat'].ndim == 3, f'{config} {split}: video_feat (B, T, D)'
            continue
        imgs = inputs['imgs']
        b, t, k, c, h, w = imgs.shape  # rank 6: (B, T, K, 3, H, W)
        assert (b, c, (h, w)) == (2, 3, tuple(backbone.visual.image_size)), imgs.shape
        assert inputs['video_mask'].shape == (b, t) and imgs.dtype == torch.uint8
        with torch.no_grad():
            feats = backbone(imgs, inputs['video_mask'])['feats']
        assert feats.shape[:2] == (b, t) and torch.isfinite(feats).all()
        with pytest.raises(ValueError, match=r'imgs must be \(B, T, K, 3, H, W\)'):
            backbone(imgs[:, :, 0], inputs['video_mask'])  # the K axis dropped


def test_demo_configs_found():
    names = {osp.basename(p) for p in DEMOS}
    assert {'retrieval_demo.py', 'caption_demo.py', 'qa_demo.py', 'read_demo.py',
            'summarization_demo.py', 'grounding_demo.py'} <= names, names
    assert np.all([osp.isfile(p) for p in DEMOS])
