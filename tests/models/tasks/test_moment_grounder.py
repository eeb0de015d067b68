import numpy as np
import pytest
import torch

from mmvpeft.models import MomentGrounder
from mmvpeft.registry import MODELS
from mmvpeft.utils.fingerprint import FrozenBaseMismatchError

ENC = dict(type='CrossModalEncoder', video_dim=6, text_dim=5, dim=16, num_heads=2,
           dropout=0.0)
HEAD = dict(type='DenseMomentHead', in_dim=16, hidden_dim=16)


def _batch(b=2, t=8, length=4):
    """Sample 0 is full; sample 1 has 5 of 8 clips and 3 of 4 words (padding on both sides)."""
    torch.manual_seed(0)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[1, 5:] = False
    text_mask = torch.ones(b, length, dtype=torch.bool)
    text_mask[1, 3:] = False
    inputs = dict(video_feat=torch.randn(b, t, 6), video_mask=mask,
                  text_feat=torch.randn(b, length, 5), text_mask=text_mask)
    samples = [dict(qid=i, gt_windows=np.array([[2.0, 6.0]]), clip_len=2.0,
                    num_clips=int(mask[i].sum()), duration=float(mask[i].sum() * 2))
               for i in range(b)]
    return inputs, samples


def _alone(inputs, i):
    """Sample ``i`` alone, trimmed to its valid clips and words (no padding at all)."""
    nv, nt = int(inputs['video_mask'][i].sum()), int(inputs['text_mask'][i].sum())
    return {k: v[i:i + 1, :nv] if k in ('video_feat', 'imgs', 'video_mask')
            else v[i:i + 1, :nt] for k, v in inputs.items()}


def _randomize_adapters(model, seed=1):
    """Non-zero `up`: a zero-initialised adapter is the identity and hides its masking."""
    torch.manual_seed(seed)
    for m in model.modules():
        if type(m).__name__ == 'ReadAdapter':
            torch.nn.init.normal_(m.up.weight, std=0.5)
            torch.nn.init.normal_(m.up.bias, std=0.5)


def test_modes_and_explicit_loss_sum():
    model = MomentGrounder(ENC, HEAD)
    inputs, samples = _batch()
    assert set(model(inputs, samples, 'tensor')) == {'logits', 'dist'}
    losses = model(inputs, samples, 'loss')
    assert set(losses) == set(model.loss_keys) == {'loss_cls', 'loss_reg', 'loss_iou'}
    total, log_vars = model.parse_losses(losses)
    torch.testing.assert_close(total, sum(losses.values()))
    assert set(log_vars) == {'loss', 'loss_cls', 'loss_reg', 'loss_iou'}
    model.eval()
    preds = model(inputs, samples, 'predict')
    assert preds[1]['qid'] == 1 and len(preds[1]['pred_saliency_scores']) == 5
    with pytest.raises(ValueError, match='unknown mode'):
        model(inputs, samples, 'nope')


def test_undeclared_loss_is_an_error_not_silently_summed():
    model = MomentGrounder(ENC, HEAD)
    inputs, samples = _batch()
    losses = model(inputs, samples, 'loss')
    losses['loss_extra'] = torch.tensor(1.0)
    with pytest.raises(KeyError, match='loss_extra'):
        model.parse_losses(losses)


def test_padding_does_not_change_valid_outputs():
    model = MomentGrounder(ENC, HEAD).eval()
    inputs, samples = _batch()
    out = model(inputs, samples, 'tensor')['logits']
    inputs['video_feat'][1, 5:] = 1e3  # garbage in padded clips
    inputs['text_feat'][1, 3:] = -1e3  # and in the padded word
    out2 = model(inputs, samples, 'tensor')['logits']
    torch.testing.assert_close(out[1, :5], out2[1, :5])
    torch.testing.assert_close(out[0], out2[0])


ADAPTER = dict(type='ReadAdapter', hidden_dim=4, bidirectional=True)


@pytest.mark.parametrize('adapter', [None, ADAPTER], ids=['plain', 'read'])
@pytest.mark.parametrize('fusion', ['joint', 'cross'])
def test_outputs_independent_of_batch_padding(fusion, adapter):
    """Each sample alone gives the same outputs and losses as in a batch padded on both the
    video and the text side (float64), also with bidirectional READ adapters in the unimodal
    layers, where only the masks (not causality) keep padding out of valid positions."""
    enc = dict(ENC, fusion=fusion, num_text_layers=1, num_video_layers=1, adapter=adapter)
    pvla = dict(type='PVLALoss', num_iters=20) if adapter else None
    model = MomentGrounder(enc, HEAD, pvla_loss=pvla, pvla_source='encoder').double().eval()
    _randomize_adapters(model)
    inputs, samples = _batch()
    inputs = {k: v.double() if v.is_floating_point() else v for k, v in inputs.items()}
    batched = model(inputs, samples, 'tensor')
    for i in range(2):
        single = model(_alone(inputs, i), samples[i:i + 1], 'tensor')
        n = samples[i]['num_clips']
        torch.testing.assert_close(batched['logits'][i, :n], single['logits'][0])
        torch.testing.assert_close(batched['dist'][i, :n], single['dist'][0])
    loss_b = model(inputs, samples, 'loss')
    loss_0 = model(_alone(inputs, 0), samples[:1], 'loss')
    loss_1 = model(_alone(inputs, 1), samples[1:], 'loss')
    assert set(loss_b) == set(model.loss_keys)
    for k in loss_b:  # per-sample normalisation: the batch loss is the mean of its samples'
        torch.testing.assert_close(loss_b[k], (loss_0[k] + loss_1[k]) / 2)


def test_pvla_from_encoder_adapters_is_a_separate_key():
    adapter = dict(type='ReadAdapter', hidden_dim=4)
    model = MomentGrounder(dict(ENC, adapter=adapter, num_text_layers=1, num_video_layers=1), HEAD,
                            pvla_loss=dict(type='PVLALoss', num_iters=20), pvla_source='encoder')
    inputs, samples = _batch()
    losses = model(inputs, samples, 'loss')
    assert 'loss_pvla' in losses and model.loss_keys[-1] == 'loss_pvla'
    total, _ = model.parse_losses(losses)
    total.backward()
    for layer in list(model.encoder.text_layers) + list(model.encoder.video_layers):
        assert layer.adapter.down.weight.grad.abs().sum() > 0


def test_pvla_without_adapters_is_a_clear_error():
    model = MomentGrounder(ENC, HEAD, pvla_loss=dict(type='PVLALoss'), pvla_source='encoder')
    inputs, samples = _batch()
    with pytest.raises(RuntimeError, match='no READ states for both modalities'):
        model(inputs, samples, 'loss')


def _frozen_video_proj_model(seed):
    torch.manual_seed(seed)
    model = MomentGrounder(ENC, HEAD)
    for p in model.encoder.video_proj.parameters():  # pretend this part is a frozen backbone
        p.requires_grad_(False)
    return model


def test_trainable_only_checkpoint_round_trip():
    model = _frozen_video_proj_model(0)
    sd = model.state_dict()
    assert not any(k.startswith('encoder.video_proj.') for k in sd)
    assert 'head.cls_branch.0.weight' in sd
    other = _frozen_video_proj_model(1)  # other trainable weights, same frozen base:
    other.encoder.video_proj.load_state_dict(model.encoder.video_proj.state_dict())
    frozen_before = {k: v.clone() for k, v in other.encoder.video_proj.state_dict().items()}
    result = other.load_state_dict(sd, strict=True)  # frozen keys are filled, not "missing"
    assert not result.missing_keys
    for k, v in other.encoder.video_proj.state_dict().items():
        torch.testing.assert_close(v, frozen_before[k], rtol=0, atol=0)
    torch.testing.assert_close(other.head.cls_branch[0].weight, model.head.cls_branch[0].weight)
    # A checkpoint that lacks a trainable weight is still reported.
    sd.pop('head.cls_branch.0.weight')
    with pytest.raises(RuntimeError, match='head.cls_branch.0.weight'):
        other.load_state_dict(sd, strict=True)


def test_checkpoints_from_before_the_petl_layer_still_load():
    """The trainable-only keys of read_demo (legacy ``adapter=`` spelling) are unchanged."""
    import os.path as osp

    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    root = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    legacy = {}
    with open(osp.join(root, 'tests', 'data', 'read_demo_trainable_keys_v0.txt')) as f:
        for line in f:
            if not line.startswith('#'):
                key, shape = line.split()
                legacy[key] = () if shape == 'scalar' else tuple(map(int, shape.split('x')))
    init_default_scope('mmvpeft')
    cfg = Config.fromfile(osp.join(root, 'configs', 'demo', 'read_demo.py'))
    model = MODELS.build(cfg.model)
    state = model.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == legacy
    # An old checkpoint (same keys, other values) loads strictly and takes effect.
    torch.manual_seed(3)
    old = {k: torch.randn(v) for k, v in legacy.items()}
    model.load_state_dict(old, strict=True)
    key = 'video_backbone.visual.transformer.resblocks.1.read_adapter.up.weight'
    assert torch.equal(model.state_dict()[key], old[key])


def test_trainable_only_checkpoint_on_another_frozen_base_is_an_error():
    sd = _frozen_video_proj_model(0).state_dict()
    other = _frozen_video_proj_model(1)  # same architecture, other frozen values (seed)
    with pytest.raises(FrozenBaseMismatchError, match=r'encoder: frozen weights differ'):
        other.load_state_dict(sd)
    # The explicit opt-out loads it, with a warning that says which part differs.
    other.allow_base_mismatch = True
    with pytest.warns(RuntimeWarning, match='encoder: frozen weights differ'):
        other.load_state_dict(sd)
    torch.testing.assert_close(other.head.cls_branch[0].weight, sd['head.cls_branch.0.weight'])
    # A checkpoint without a fingerprint (written before fingerprints existed) cannot be
    # checked: it loads, with a warning that says so, so older checkpoints keep working.
    plain = {k: v for k, v in sd.items()}  # a dict copy drops the state-dict metadata
    with pytest.warns(RuntimeWarning, match='no frozen-base fingerprint'):
        _frozen_video_proj_model(0).load_state_dict(plain)


@pytest.mark.parametrize('loader', ['torch', 'mmengine'])
def test_missing_or_mismatched_trainable_weights_are_errors(loader):
    """MMEngine's loader (what the tools use) only warns about them: here they are errors
    unless partial loading is asked for."""
    from mmengine.runner.checkpoint import load_state_dict as mmengine_load

    def load(model, sd):  # torch's own explicit request for partial loading is strict=False
        if loader == 'torch':
            return model.load_state_dict(sd, strict=not model.allow_partial_load)
        return mmengine_load(model, sd)

    model = _frozen_video_proj_model(0)
    full = model.state_dict()
    missing = model.state_dict()
    missing.pop('head.cls_branch.0.weight')
    with pytest.raises(RuntimeError, match=r'missing \(1\).*head\.cls_branch\.0\.weight'):
        load(model, missing)
    resized = model.state_dict()
    resized['head.cls_branch.0.bias'] = torch.zeros(7)
    with pytest.raises(RuntimeError, match=r'shape mismatch.*head\.cls_branch\.0\.bias'):
        load(model, resized)
    extra = model.state_dict()
    extra['head.new_layer.weight'] = torch.zeros(1)
    with pytest.raises(RuntimeError, match=r'unexpected.*head\.new_layer\.weight'):
        load(model, extra)
    model.allow_partial_load = True
    before = model.head.cls_branch[0].bias.detach().clone()
    with pytest.warns(RuntimeWarning, match='Partial load'):
        load(model, resized)
    torch.testing.assert_close(model.head.cls_branch[0].bias, before, rtol=0, atol=0)
    load(model, full)  # a matching checkpoint loads silently


# ------------------------------------------------------------- READ towers end to end

def _tiny_clip():
    return dict(embed_dim=32,
                vision_cfg=dict(image_size=32, patch_size=16, width=32, layers=2,
                                head_width=16, mlp_ratio=2.0),
                text_cfg=dict(context_length=16, vocab_size=1000, width=32, heads=2, layers=2,
                              mlp_ratio=2.0))


def _read_model(pretrained=None, bidirectional=True, seed=0):
    torch.manual_seed(seed)
    adapter = dict(hidden_dim=4, bidirectional=bidirectional)
    model = MomentGrounder(
        dict(type='CrossModalEncoder', video_dim=32, text_dim=32, dim=16, num_heads=2,
             dropout=0.0),
        HEAD,
        video_backbone=dict(type='CLIPVisionBackbone', model_cfg=_tiny_clip(),
                            pretrained=pretrained, adapter=adapter, adapter_layers=(0, 1)),
        text_backbone=dict(type='CLIPTextBackbone', model_cfg=_tiny_clip(),
                           pretrained=pretrained, adapter=adapter, adapter_layers=(0, 1)),
        pvla_loss=dict(type='PVLALoss', num_iters=20)).double().eval()
    _randomize_adapters(model)
    return model


def _read_batch():
    """Sample 0: 4 clips, 6 words; sample 1: 2 clips, 3 words (EOT last), then padding."""
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(2, 4, 1, 3, 32, 32, generator=g, dtype=torch.float64)
    video_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]).bool()
    tokens = torch.randint(1, 900, (2, 6), generator=g)
    text_mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3]).bool()
    tokens[0, 5], tokens[1, 2] = 999, 999  # EOT
    tokens[~text_mask] = 0
    inputs = dict(imgs=imgs, video_mask=video_mask, text_tokens=tokens, text_mask=text_mask)
    samples = [dict(qid=i, gt_windows=np.array([[1.0, 3.0]]), clip_len=1.0,
                    num_clips=int(video_mask[i].sum()), duration=float(video_mask[i].sum()))
               for i in range(2)]
    return inputs, samples


@pytest.mark.parametrize('bidirectional', [False, True])
def test_read_towers_padded_batch_equals_each_sample_alone(bidirectional):
    """READ in both frozen CLIP towers, PVLA on their states: a padded batch (video and text)
    gives each sample's outputs and losses alone. With bidirectional adapters only the masks
    the model passes to its towers keep padding out; with one-directional adapters the
    padded clips' features differ, and only the encoder's masks keep them out."""
    model = _read_model(bidirectional=bidirectional)
    inputs, samples = _read_batch()
    batched = model(inputs, samples, 'tensor')
    alone = [model(_alone(inputs, i), samples[i:i + 1], 'tensor') for i in range(2)]
    for i in range(2):
        n = samples[i]['num_clips']
        torch.testing.assert_close(batched['logits'][i, :n], alone[i]['logits'][0])
        torch.testing.assert_close(batched['dist'][i, :n], alone[i]['dist'][0])
    junk = dict(inputs, imgs=inputs['imgs'].clone(), text_tokens=inputs['text_tokens'].clone())
    junk['imgs'][1, 2:] = torch.rand(2, 1, 3, 32, 32, dtype=torch.float64)
    junk['text_tokens'][1, 3:] = 5
    torch.testing.assert_close(model(junk, samples, 'tensor')['logits'][1, :2],
                               batched['logits'][1, :2])
    losses = model(inputs, samples, 'loss')
    per_sample = [model(_alone(inputs, i), samples[i:i + 1], 'loss') for i in range(2)]
    for k in losses:
        torch.testing.assert_close(losses[k], (per_sample[0][k] + per_sample[1][k]) / 2)


def test_pvla_aligns_video_states_with_text_states():
    model = _read_model()
    inputs, samples = _read_batch()
    loss = model(inputs, samples, 'loss')['loss_pvla']
    video = model.video_backbone(inputs['imgs'], inputs['video_mask'])['aux']['read_states']
    text = model.text_backbone(inputs['text_tokens'], inputs['text_mask'])['aux']['read_states']
    ref = model.pvla_loss(video, text, inputs['video_mask'], inputs['text_mask'])
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=0)
    assert loss > 0


def test_read_checkpoint_checks_the_clip_base(tmp_path):
    """A READ checkpoint (adapters only) loads onto the CLIP it was trained on, and onto
    another one (other file, or random weights) only on request, naming the towers."""
    from open_clip.model import CLIP
    paths = []
    for seed in (1, 2):  # not 0: random towers are built from init_seed 0 (the default)
        torch.manual_seed(seed)
        paths.append(str(tmp_path / f'clip{seed}.pt'))
        torch.save(CLIP(**_tiny_clip()).state_dict(), paths[-1])
    model = _read_model(paths[0])
    ckpt = tmp_path / 'read.pth'
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    sd = torch.load(ckpt, weights_only=True)['state_dict']  # the fingerprint survives
    assert not any('conv1' in k for k in sd)
    _read_model(paths[0], seed=5).load_state_dict(sd)  # same CLIP file: fine
    with pytest.raises(FrozenBaseMismatchError) as err:
        _read_model(paths[1]).load_state_dict(sd)
    msg = str(err.value)
    assert 'video_backbone: frozen weights differ' in msg and 'text_backbone' in msg
    assert 'pretrained_sha256' in msg and '--allow-base-mismatch' in msg
    with pytest.raises(FrozenBaseMismatchError, match=r"pretrained_sha256 '[0-9a-f]+' "
                       r'\(checkpoint\) vs None'):
        _read_model(None).load_state_dict(sd)


def test_old_name_momentretriever_builds_the_grounder_with_a_warning_and_loads_its_weights():
    """Configs and checkpoints written with ``type='MomentRetriever'`` keep loading."""
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning, match="use type='MomentGrounder'"):
        old = MODELS.build(dict(type='MomentRetriever', encoder=ENC, head=HEAD))
    assert isinstance(old, MomentGrounder)
    new = MODELS.build(dict(type='MomentGrounder', encoder=ENC, head=HEAD))
    assert set(new.state_dict()) == set(old.state_dict())
    new.load_state_dict(old.state_dict())
    assert all(torch.equal(v, new.state_dict()[k]) for k, v in old.state_dict().items())
