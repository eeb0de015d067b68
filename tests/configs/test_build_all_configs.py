"""Every config under ``configs/`` builds its model from the config alone: random weights
(open_clip towers from their config, never the hub), in an empty working folder with no
data, and without reading or writing any file (the QA configs included: their head size is
``num_answers``, their vocabulary file is read only once it exists)."""
import glob
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmvpeft.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(p for p in glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'),
                                      recursive=True) if '_base_' not in p)


def random_weights(node):
    """Every ``pretrained`` tag or path in a model config -> None (random weights)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'pretrained' and isinstance(value, str):
                node[key] = None
            else:
                random_weights(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            random_weights(value)


@pytest.fixture
def no_hub(monkeypatch):
    """Any attempt to fetch weights fails the test instead of reaching the network."""
    import open_clip.factory
    import open_clip.pretrained

    def refuse(*args, **kwargs):
        raise AssertionError(f'a config build tried to download weights: {args} {kwargs}')

    for module in (open_clip.factory, open_clip.pretrained):
        for name in ('download_pretrained', 'download_pretrained_from_hf',
                     'download_pretrained_from_url'):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, refuse)


def test_every_config_is_collected():
    names = {osp.relpath(p, REPO_ROOT) for p in CONFIGS}
    assert {'configs/tokenmix_msrvtt_qa.py', 'configs/demo/qa_demo.py',
            'configs/read_tacos.py', 'configs/demo/read_demo.py'} <= names
    assert len([n for n in names if n.startswith('configs/demo/')]) >= 5


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, REPO_ROOT))
def test_config_builds_with_random_weights_and_no_data(path, tmp_path, monkeypatch, no_hub):
    monkeypatch.chdir(tmp_path)  # relative data roots (data/...) point at nothing here
    cfg = Config.fromfile(path)
    random_weights(cfg.model)
    init_default_scope('mmvpeft')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable, 'a config that trains nothing'
    assert all(torch.isfinite(p).all() for p in trainable)
    assert os.listdir(tmp_path) == [], 'building the model read or wrote data'
    if cfg.model.type == 'VideoQA':
        assert model.head.num_answers == cfg.model.get(
            'num_answers', len((cfg.model.get('answer_vocab') or {}).get('answers') or []))
