import numpy as np
import pytest
import torch

from mmvpeft.models import MomentRetriever
from mmvpeft.registry import MODELS

ENC = dict(type='CrossModalEncoder', video_dim=6, text_dim=5, dim=16, num_heads=2,
           dropout=0.0)
HEAD = dict(type='DenseMomentHead', in_dim=16, hidden_dim=16)


def _batch(b=2, t=8, length=4):
    torch.manual_seed(0)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[1, 5:] = False
    inputs = dict(video_feat=torch.randn(b, t, 6), video_mask=mask,
                  text_feat=torch.randn(b, length, 5), text_mask=torch.ones(b, length, dtype=bool))
    samples = [dict(qid=i, gt_windows=np.array([[2.0, 6.0]]), clip_len=2.0,
                    num_clips=int(mask[i].sum()), duration=float(mask[i].sum() * 2))
               for i in range(b)]
    return inputs, samples


def test_modes_and_explicit_loss_sum():
    model = MomentRetriever(ENC, HEAD)
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
    model = MomentRetriever(ENC, HEAD)
    inputs, samples = _batch()
    losses = model(inputs, samples, 'loss')
    losses['loss_extra'] = torch.tensor(1.0)
    with pytest.raises(KeyError, match='loss_extra'):
        model.parse_losses(losses)


def test_padding_does_not_change_valid_outputs():
    model = MomentRetriever(ENC, HEAD).eval()
    inputs, samples = _batch()
    out = model(inputs, samples, 'tensor')['logits']
    inputs['video_feat'][1, 5:] = 1e3  # garbage in padded clips
    out2 = model(inputs, samples, 'tensor')['logits']
    torch.testing.assert_close(out[1, :5], out2[1, :5])


@pytest.mark.parametrize('fusion', ['joint', 'cross'])
def test_outputs_independent_of_batch_padding(fusion):
    """A sample alone and in a padded batch gives the same outputs and losses (float64)."""
    model = MomentRetriever(dict(ENC, fusion=fusion, num_text_layers=1, num_video_layers=1),
                            HEAD).double().eval()
    inputs, samples = _batch()
    inputs = {k: v.double() if v.is_floating_point() else v for k, v in inputs.items()}
    alone = {k: v[1:2, :5] if k.startswith('video') else v[1:2] for k, v in inputs.items()}
    batched = model(inputs, samples, 'tensor')
    single = model(alone, samples[1:], 'tensor')
    torch.testing.assert_close(batched['logits'][1, :5], single['logits'][0])
    torch.testing.assert_close(batched['dist'][1, :5], single['dist'][0])
    loss_b = model(inputs, samples, 'loss')
    loss_0 = model({k: v[:1] for k, v in inputs.items()}, samples[:1], 'loss')
    loss_1 = model(alone, samples[1:], 'loss')
    for k in loss_b:  # per-sample normalisation: the batch loss is the mean of its samples'
        torch.testing.assert_close(loss_b[k], (loss_0[k] + loss_1[k]) / 2)


def test_pvla_from_encoder_adapters_is_a_separate_key():
    adapter = dict(type='ReadAdapter', hidden_dim=4)
    model = MomentRetriever(dict(ENC, adapter=adapter, num_text_layers=1, num_video_layers=1), HEAD,
                            pvla_loss=dict(type='PVLALoss', num_iters=20), pvla_source='encoder')
    inputs, samples = _batch()
    losses = model(inputs, samples, 'loss')
    assert 'loss_pvla' in losses and model.loss_keys[-1] == 'loss_pvla'
    total, _ = model.parse_losses(losses)
    total.backward()
    for layer in list(model.encoder.text_layers) + list(model.encoder.video_layers):
        assert layer.adapter.down.weight.grad.abs().sum() > 0


def test_pvla_without_adapters_is_a_clear_error():
    model = MomentRetriever(ENC, HEAD, pvla_loss=dict(type='PVLALoss'), pvla_source='encoder')
    inputs, samples = _batch()
    with pytest.raises(RuntimeError, match='no READ states for both modalities'):
        model(inputs, samples, 'loss')


def test_trainable_only_checkpoint_round_trip():
    model = MomentRetriever(ENC, HEAD)
    for p in model.encoder.video_proj.parameters():  # pretend this part is a frozen backbone
        p.requires_grad_(False)
    sd = model.state_dict()
    assert not any(k.startswith('encoder.video_proj.') for k in sd)
    assert 'head.cls_branch.0.weight' in sd
    other = MomentRetriever(ENC, HEAD)
    for p in other.encoder.video_proj.parameters():
        p.requires_grad_(False)
    frozen_before = {k: v.clone() for k, v in other.encoder.video_proj.state_dict().items()}
    result = other.load_state_dict(sd, strict=True)  # frozen keys are filled, not "missing"
    assert not result.missing_keys
    for k, v in other.encoder.video_proj.state_dict().items():
        torch.testing.assert_close(v, frozen_before[k])
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
