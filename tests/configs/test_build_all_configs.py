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


def one_cpu_step(cfg, model):
    """One AdamW step on a CPU at the smallest batch that trains (retrieval's InfoNCE needs
    two videos; grounding takes one), two clips (one frame each for retrieval) at the
    config's 224 px: the ViT-L/14 configs' "builds and takes a CPU step" check, run on the
    model this test already built (a second ViT-L build costs more than the step)."""
    from mmvpeft.apis.benchmarking import synthetic_batch
    retrieval = cfg.model.type == 'VideoTextRetriever'
    inputs, samples = synthetic_batch(cfg, batch_size=2 if retrieval else 1,
                                      num_clips=1 if retrieval else 2, num_words=8,
                                      device='cpu')
    model.train()
    losses = model(inputs, samples, mode='loss')
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total), losses
    total.backward()
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    for n, p in model.named_parameters():
        if not p.requires_grad:
            assert p.grad is None, n
    moved = {n: p.detach().clone() for n, p in trained.items()
             if p.grad is not None and p.grad.abs().sum() > 0}
    assert moved and all(torch.isfinite(p.grad).all() for p in trained.values()
                         if p.grad is not None)
    torch.optim.AdamW(trained.values(), lr=1e-4).step()
    assert all(not torch.equal(moved[n], trained[n]) for n in moved)
    return moved


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
    if 'vitl14' in osp.basename(path):
        assert cfg.model.video_backbone.model_name == 'ViT-L-14'
        assert model.video_backbone.width == 1024 and len(model.video_backbone.blocks()) == 24
        moved = one_cpu_step(cfg, model)
        in_towers = [n for n in moved if n.split('.')[0].endswith('backbone')]
        assert in_towers, 'the CLIP towers\' PEFT method got no gradient'
    if cfg.model.type == 'VideoQA':
        assert model.head.num_answers == cfg.model.get(
            'num_answers', len((cfg.model.get('answer_vocab') or {}).get('answers') or []))
