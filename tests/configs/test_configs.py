"""Every shipped config parses and builds; the READ configs train end to end."""
import glob
import json
import os.path as osp
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmvpeft  # noqa: F401  (weights_only allow-list)
from mmvpeft.registry import MODELS
from mmvpeft.utils.fingerprint import FrozenBaseMismatchError

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(p for p in glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'),
                                      recursive=True) if '_base_' not in p)


def _offline(cfg):
    """No hub here: build CLIP towers with random weights instead of the 'openai' tag."""
    for key in ('video_backbone', 'text_backbone'):
        if cfg.model.get(key):
            cfg.model[key].pretrained = None
    return cfg


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, REPO_ROOT))
def test_config_parses_with_shallow_inheritance(path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmvpeft'
    assert cfg.model.type in ('MomentGrounder', 'VideoTextRetriever', 'VideoCaptioner', 'VideoQA')
    with open(path) as f:
        text = f.read()
    assert text.lstrip().startswith('#'), 'every config opens with a comment saying what it is'
    # Two levels at most: a config's bases inherit from nothing.
    bases = re.findall(r"'([^']+\.py)'", text.split('_base_ = ', 1)[1].split(']')[0])
    assert bases
    for base in bases:
        with open(osp.join(osp.dirname(path), base)) as f:
            assert '_base_ =' not in f.read(), base


FEATURE_CONFIGS = [p for p in CONFIGS
                   if 'grounding' in osp.basename(p) and 'read_' not in osp.basename(p)]


@pytest.mark.parametrize('path', FEATURE_CONFIGS, ids=lambda p: osp.relpath(p, REPO_ROOT))
def test_feature_configs_build(path):
    init_default_scope('mmvpeft')
    model = MODELS.build(Config.fromfile(path).model)
    assert set(model.loss_keys) >= {'loss_cls'}


def test_read_tacos_trains_a_step_on_tacos_shaped_input():
    """ViT-B/32 both towers (random weights), 224 px frames, READ in 4 blocks each, PVLA."""
    from mmvpeft.apis import benchmarking as bench
    cfg = _offline(Config.fromfile(osp.join(REPO_ROOT, 'configs', 'read_tacos.py')))
    init_default_scope('mmvpeft')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    inputs, samples = bench.synthetic_batch(cfg, batch_size=2, num_clips=6, num_words=12,
                                            device='cpu')
    assert inputs['imgs'].shape == (2, 6, 1, 3, 224, 224)
    losses = model(inputs, samples, mode='loss')
    assert set(losses) == {'loss_cls', 'loss_reg', 'loss_iou', 'loss_pvla'}
    total, _ = model.parse_losses(losses)
    total.backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    frozen_clip = [n for n in trainable if n.split('.')[0].endswith('backbone')
                   and 'read_adapter' not in n]
    assert not frozen_clip  # only adapters train inside the CLIP towers
    adapters = [n for n in trainable if 'read_adapter' in n]
    assert len({n.split('.read_adapter')[0] for n in adapters}) == 8  # 4 blocks x 2 towers
    last = ('video_backbone.visual.transformer.resblocks.11.',
            'text_backbone.transformer.resblocks.11.')
    for n, p in model.named_parameters():
        if not p.requires_grad:
            assert p.grad is None, n
        elif 'read_adapter' in n:
            grad = p.grad.abs().sum()
            # Step 0: `up` is zero-initialised, so down/RNN get gradient only through PVLA,
            # which reads the last adapted layer's states; every `up` gets the task loss.
            if '.up.' in n or n.startswith(last):
                assert grad > 0, n
            else:
                assert grad == 0, n
    # After one update `up` is non-zero and the task loss reaches every adapter.
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    model.zero_grad()
    model.parse_losses(model(inputs, samples, mode='loss'))[0].backward()
    for n in adapters:
        assert dict(model.named_parameters())[n].grad.abs().sum() > 0, n
    # Adapter-only checkpoints: no frozen CLIP weight in the state dict.
    keys = model.state_dict().keys()
    assert not any('visual.conv1' in k or 'token_embedding' in k for k in keys)
    assert any('read_adapter' in k for k in keys)


def test_read_demo_trains_and_saves_adapter_only_checkpoints(tmp_path, load_tool):
    train, test = load_tool('train'), load_tool('test')
    data, work = str(tmp_path / 'data'), str(tmp_path / 'work')
    gen = dict(num_videos=8, duration=8.0, fps=4, size=(64, 64), val_ratio=0.25)
    opts = [f'data_root={data}', 'train_cfg.max_epochs=2', 'train_cfg.val_interval=1',
            'default_hooks.checkpoint.interval=1', 'train_dataloader.batch_size=4',
            'default_hooks.logger.interval=1']
    for split in ('train', 'val', 'test'):
        opts += [f'{split}_dataloader.dataset.data_root={data}']
        opts += [f'{split}_dataloader.dataset.generator.{k}={v}' for k, v in gen.items()
                 if k != 'size']
    config = osp.join(REPO_ROOT, 'configs', 'demo', 'read_demo.py')
    train.main([config, '--work-dir', work, '--cfg-options', *opts])
    with open(next(iter(glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))))) as f:
        first = json.loads(f.readline())
    assert first['loss_pvla'] > 0 and np.isfinite(first['loss'])
    ckpt = torch.load(osp.join(work, 'epoch_2.pth'), map_location='cpu', weights_only=True)
    keys = ckpt['state_dict'].keys()
    assert any('read_adapter' in k for k in keys)
    assert not any(k.startswith('video_backbone.visual.conv1') for k in keys)
    # test.py on the trained checkpoint reproduces training's last validation exactly; the
    # untrained reference (`none`) does not.
    runs = sorted(glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json')))
    with open(runs[-1]) as f:
        last_val = [json.loads(line) for line in f if '"mIoU"' in line][-1]
    trained = test.main([config, osp.join(work, 'epoch_2.pth'), '--work-dir', work,
                         '--cfg-options', *opts])
    assert {k: float(v) for k, v in trained.items()} == {
        k: v for k, v in last_val.items() if k in trained}
    assert set(trained) <= set(last_val)
    base = test.main([config, 'none', '--work-dir', work, '--cfg-options', *opts])
    assert set(base) == set(trained) and base['mIoU'] != trained['mIoU']
    # Another init_seed builds another random frozen CLIP: the adapters were not trained on
    # it (the runtime seed alone does not change the frozen base).
    other = [*opts, 'model.video_backbone.init_seed=1', 'model.text_backbone.init_seed=1']
    with pytest.raises(FrozenBaseMismatchError, match='video_backbone: frozen weights differ'):
        test.main([config, osp.join(work, 'epoch_2.pth'), '--work-dir', work,
                   '--cfg-options', *other])
    with pytest.warns(RuntimeWarning, match='text_backbone: frozen weights differ'):
        test.main([config, osp.join(work, 'epoch_2.pth'), '--work-dir', work,
                   '--allow-base-mismatch', '--cfg-options', *other])


def _trainable(model):
    return {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}


def test_tokenmix_retrieval_trains_the_last_block_only_the_papers_budget():
    """ViT-B/16, mixing in the last block: 7,087,872 trained tower parameters (methods.md)."""
    from mmvpeft.apis import benchmarking as bench
    init_default_scope('mmvpeft')
    cfg = _offline(Config.fromfile(osp.join(REPO_ROOT, 'configs',
                                            'tokenmix_msrvtt_retrieval.py')))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    trainable = _trainable(model)
    tower = {n: k for n, k in trainable.items() if n != 'logit_scale'}
    assert all(n.startswith('video_backbone.visual.transformer.resblocks.11.') for n in tower)
    assert sum(tower.values()) == 7_087_872 and trainable['logit_scale'] == 1
    assert model.video_backbone.visual.transformer.resblocks[11].peft_sites == {
        'attention': ['token_mixer']}
    inputs, samples = bench.synthetic_batch(cfg, batch_size=2, num_clips=8, num_words=8,
                                            device='cpu')
    assert inputs['imgs'].shape == (2, 8, 1, 3, 224, 224)
    total, _ = model.parse_losses(model(inputs, samples, mode='loss'))
    total.backward()
    assert all((p.grad is not None) == p.requires_grad for p in model.parameters())


@pytest.mark.parametrize('name,kinds', [('read_msrvtt_retrieval.py', {'read_adapter'}),
                                        ('lora_msrvtt_retrieval.py', {'lora'})])
def test_retrieval_configs_train_only_their_method(name, kinds):
    init_default_scope('mmvpeft')
    cfg = _offline(Config.fromfile(osp.join(REPO_ROOT, 'configs', name)))
    model = MODELS.build(cfg.model)
    tower_params = [n for n in _trainable(model) if n != 'logit_scale']
    assert tower_params
    assert {k for n in tower_params for k in kinds if f'.{k}.' in n} == kinds
    assert all(any(f'.{k}.' in n for k in kinds) for n in tower_params)


def test_retrieval_demo_trains_and_tests(tmp_path, load_tool):
    train, test = load_tool('train'), load_tool('test')
    data, work = str(tmp_path / 'data'), str(tmp_path / 'work')
    opts = ['train_cfg.max_epochs=2', 'train_cfg.val_interval=1',
            'default_hooks.checkpoint.interval=1', 'train_dataloader.batch_size=8']
    for split in ('train', 'val', 'test'):
        opts += [f'{split}_dataloader.dataset.data_root={data}',
                 f'{split}_dataloader.dataset.generator.num_train=16',
                 f'{split}_dataloader.dataset.generator.num_val=8']
    config = osp.join(REPO_ROOT, 'configs', 'demo', 'retrieval_demo.py')
    train.main([config, '--work-dir', work, '--cfg-options', *opts])
    ckpt = torch.load(osp.join(work, 'epoch_2.pth'), map_location='cpu', weights_only=True)
    keys = set(ckpt['state_dict'])
    # Trainable-only: the mixing block, the text READ adapter and the temperature.
    assert 'logit_scale' in keys
    assert all(k == 'logit_scale' or '.resblocks.1.' in k for k in keys)
    assert any('read_adapter' in k for k in keys)
    # test.py on the checkpoint reproduces training's last validation exactly.
    runs = sorted(glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json')))
    with open(runs[-1]) as f:
        last_val = [json.loads(line) for line in f if '"t2v/R@1"' in line][-1]
    trained = test.main([config, osp.join(work, 'epoch_2.pth'), '--work-dir', work,
                         '--cfg-options', *opts])
    assert {k: float(v) for k, v in trained.items()} == {
        k: v for k, v in last_val.items() if k in trained}
    base = test.main([config, 'none', '--work-dir', work, '--cfg-options', *opts])
    assert set(base) == set(trained) and base['t2v/MnR'] != trained['t2v/MnR']
