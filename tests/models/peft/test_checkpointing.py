"""Activation checkpointing (``grad_checkpointing=True``) changes memory, never results.

For every PETL method, in float64, a training step with checkpointing on gives the same
losses and the same gradients as one without (to 1e-12), while the forward keeps fewer bytes
for backward (so the checkpointed path really ran). READ's states, which PVLA reads from the
layout, keep their graph, and a recompute never appends to the live layout.
"""
import numpy as np
import pytest
import torch
import torch.utils.checkpoint

from mmvpeft.apis.benchmarking import saved_bytes, set_grad_checkpointing
from mmvpeft.models.backbones import CLIPTextBackbone, CLIPVisionBackbone
from mmvpeft.models.decoders import VideoTextDecoder
from mmvpeft.models.peft import SequenceLayout, peft_context
from mmvpeft.models.peft.block import as_peft_block
from mmvpeft.registry import MODELS


def _tiny_clip():
    return dict(embed_dim=16,
                vision_cfg=dict(image_size=32, patch_size=16, width=32, layers=3, head_width=16,
                                mlp_ratio=2.0),
                text_cfg=dict(context_length=8, vocab_size=1000, width=32, heads=2, layers=3,
                              mlp_ratio=2.0))


def _perturb_trainable(model, seed=1):
    """Move every trainable tensor off its init: zero-initialised up-projections (READ, LoRA B,
    adapters) would otherwise give zero gradients upstream and hide a wrong recompute."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))


def _step(model, enabled, loss_fn):
    """(saved bytes, loss, {name: grad}) of one forward + backward."""
    set_grad_checkpointing(model, enabled)
    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)  # same dropout masks in both runs
    nbytes, loss = saved_bytes(model, loss_fn)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return nbytes, loss.detach(), grads


def _assert_same_and_smaller(model, loss_fn):
    plain_bytes, plain_loss, plain = _step(model, False, loss_fn)
    ckpt_bytes, ckpt_loss, ckpt = _step(model, True, loss_fn)
    torch.testing.assert_close(ckpt_loss, plain_loss, rtol=0, atol=1e-12)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(plain) == set(ckpt) == trainable  # a frozen stem still passes gradients
    for name in plain:
        assert plain[name].abs().sum() > 0, f'{name} got a zero gradient: the test proves nothing'
        torch.testing.assert_close(ckpt[name], plain[name], rtol=0, atol=1e-12, msg=name)
    assert ckpt_bytes < plain_bytes


def _video(b=2, t=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    imgs = torch.rand(b, t, 1, 3, 32, 32, generator=g, dtype=torch.float64)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[1, 3:] = False  # padding: the replayed layout must carry the mask
    return imgs, mask


VISION_METHODS = {
    'read_tokens': [dict(type='READ', layers=(1, 2), hidden_dim=4)],
    'read_cls_bidirectional': [dict(type='READ', layers=(1, 2), hidden_dim=4, mode='cls',
                                    bidirectional=True)],
    'token_mixing': [dict(type='TokenMixing', layers=(-1, ))],
    'lora': [dict(type='LoRA', layers=(1, 2), rank=2)],
    'houlsby': [dict(type='HoulsbyAdapter', layers=(1, 2), hidden_dim=4)],
    'st_adapter': [dict(type='STAdapter', layers=(1, 2), hidden_dim=4)],
    'vpt_deep': [dict(type='VisualPrompt', layers=(1, 2), num_tokens=2, deep=True)],
    'lora+read': [dict(type='LoRA', layers=(1, ), rank=2),
                  dict(type='READ', layers=(1, 2), hidden_dim=4)],
}


@pytest.mark.parametrize('name', sorted(VISION_METHODS))
def test_vision_tower_gradients_equal_with_checkpointing(name):
    """Block 0 is a frozen stem in every case (methods start at block 1 or later)."""
    torch.manual_seed(0)
    tower = CLIPVisionBackbone(model_cfg=_tiny_clip(), peft=VISION_METHODS[name]).double()
    tower.train()
    _perturb_trainable(tower)
    imgs, mask = _video()

    def loss_fn():
        out = tower(imgs, mask)
        loss = out['feats'].pow(2).sum()
        if 'read_states' in out['aux']:  # what PVLA would align
            loss = loss + out['aux']['read_states'].pow(2).sum()
        return loss

    _assert_same_and_smaller(tower, loss_fn)


def test_text_tower_read_and_lora_gradients_equal_with_checkpointing():
    torch.manual_seed(0)
    tower = CLIPTextBackbone(model_cfg=_tiny_clip(),
                             peft=[dict(type='LoRA', layers=(2, ), rank=2),
                                   dict(type='READ', layers=(1, 2), hidden_dim=4)]).double()
    tower.train()
    _perturb_trainable(tower)
    tokens = torch.tensor([[5, 6, 7, 8, 999], [9, 10, 999, 0, 0]])
    mask = torch.tensor([[1] * 5, [1] * 3 + [0] * 2]).bool()

    def loss_fn():
        out = tower(tokens, mask)
        return out['pooled'].pow(2).sum() + out['aux']['read_states'].pow(2).sum()

    _assert_same_and_smaller(tower, loss_fn)


def test_grounder_read_pvla_encoder_and_dropout_equal_with_checkpointing():
    """READ in both frozen towers, PVLA on their states, READ adapters in the encoder's
    unimodal layers, dropout on: every switch on at once gives the same losses and grads."""
    torch.manual_seed(0)
    read = dict(type='READ', layers=(1, 2), hidden_dim=4)
    model = MODELS.build(dict(
        type='MomentGrounder',
        video_backbone=dict(type='CLIPVisionBackbone', model_cfg=_tiny_clip(), peft=[read]),
        text_backbone=dict(type='CLIPTextBackbone', model_cfg=_tiny_clip(), peft=[read]),
        encoder=dict(type='CrossModalEncoder', video_dim=16, text_dim=32, dim=16, num_heads=2,
                     num_text_layers=1, num_video_layers=1, num_fusion_layers=1,
                     fusion='cross', dropout=0.1, adapter=dict(type='ReadAdapter',
                                                               hidden_dim=4)),
        head=dict(type='DenseMomentHead', in_dim=16, hidden_dim=16),
        pvla_loss=dict(type='PVLALoss', num_iters=10))).double().train()
    _perturb_trainable(model)
    imgs, video_mask = _video()
    tokens = torch.tensor([[5, 6, 7, 999], [9, 10, 999, 0]])
    text_mask = tokens != 0
    inputs = dict(imgs=imgs, video_mask=video_mask, text_tokens=tokens, text_mask=text_mask)
    samples = [dict(qid=i, gt_windows=np.array([[1.0, 3.0]]), clip_len=1.0,
                    num_clips=int(video_mask[i].sum()), duration=float(video_mask[i].sum()))
               for i in range(2)]

    def loss_fn():
        losses = model(inputs, samples, 'loss')
        assert set(losses) == {'loss_cls', 'loss_reg', 'loss_iou', 'loss_pvla'}
        return sum(losses.values())

    assert set(set_grad_checkpointing(model, True)) == {'video_backbone', 'text_backbone',
                                                        'encoder'}
    _assert_same_and_smaller(model, loss_fn)


def test_decoder_read_lora_gradients_equal_with_checkpointing():
    torch.manual_seed(0)
    dec = VideoTextDecoder(model_cfg=dict(width=32, heads=2, layers=2, vocab_size=64,
                                          context_length=12, mlp_ratio=2.0, text_layers=1),
                           memory_dims=dict(video=16), max_frames=8, frozen=True,
                           peft=[dict(type='READ', layers=(1, 2), hidden_dim=4),
                                 dict(type='LoRA', layers=(2, ), rank=2)],
                           sot_token_id=62, eot_token_id=63).double().train()
    _perturb_trainable(dec)
    video = torch.randn(2, 3, 2, 16, dtype=torch.float64)
    tokens = torch.tensor([[62, 5, 6, 63, 0, 0], [62, 7, 8, 9, 10, 63]])
    mask = tokens != 0

    def loss_fn():
        mem, mmask = dec.encode_memory(video, torch.ones(2, 3, dtype=torch.bool))
        return dec.loss(tokens, mask, mem, mmask)

    _assert_same_and_smaller(dec, loss_fn)
    # Generation runs without a graph: nothing to checkpoint, same tokens either way.
    mem, mmask = dec.encode_memory(video, torch.ones(2, 3, dtype=torch.bool))
    dec.eval()
    with_ckpt = dec.generate(mem, mmask, max_len=5)
    set_grad_checkpointing(dec, False)
    assert dec.generate(mem, mmask, max_len=5) == with_ckpt


@pytest.mark.parametrize('early_stop', [True, False])
def test_recompute_never_writes_into_the_live_layout(early_stop):
    """Backward recomputes each READ block on a copy of its layout: the forward's layout
    still holds one state tensor per adapted block afterwards, the very tensors that were
    returned (no second set appended, none replaced). With torch's early stop (the default)
    a recompute ends once the saved tensors are back, before READ appends; without it the
    whole block runs again, appends included."""
    torch.manual_seed(0)
    tower = CLIPTextBackbone(model_cfg=_tiny_clip(),
                             peft=[dict(type='READ', layers=(0, 1, 2), hidden_dim=4)]).double()
    tower.set_grad_checkpointing(True)
    tower.train()
    _perturb_trainable(tower)
    x = torch.randn(2, 5, 32, dtype=torch.float64)
    layout = SequenceLayout(batch_size=2, mask=torch.ones(2, 5, dtype=torch.bool))
    # The flag is read when a region is entered, so it must cover the forward.
    with torch.utils.checkpoint.set_checkpoint_early_stop(early_stop):
        with peft_context(tower.blocks(), layout):
            for block in tower.blocks():
                x = block(x, attn_mask=tower.attn_mask[:5, :5])
    states = list(layout.aux['read_states_raw'])
    adapters = [b.read_adapter for b in tower.blocks()]
    last = [a.last_states for a in adapters]
    (x.sum() + sum(s.pow(2).sum() for s in states)).backward()
    assert len(layout.aux['read_states_raw']) == 3
    assert all(a is b for a, b in zip(layout.aux['read_states_raw'], states))
    assert all(a.last_states is s for a, s in zip(adapters, last))
    assert all(b.peft_layout is None for b in tower.blocks())


def test_switch_converts_plain_blocks_without_changing_the_prefix_cut():
    """Blocks no method touches become PETL blocks with no site (same computation), so the
    frozen-prefix cut (first block that can change) stays where it was."""
    torch.manual_seed(0)
    tower = CLIPVisionBackbone(model_cfg=_tiny_clip(),
                               peft=[dict(type='READ', layers=(2, ), hidden_dim=4)])
    before = tower.prefix_start()
    imgs, mask = _video(t=2)
    with torch.no_grad():
        ref = tower(imgs.float(), mask)['feats']
    tower.set_grad_checkpointing(True)
    assert tower.prefix_start() == before == 2
    assert all(b.peft_checkpoint for b in tower.blocks())
    with torch.no_grad():
        torch.testing.assert_close(tower(imgs.float(), mask)['feats'], ref, rtol=0, atol=0)
    tower.set_grad_checkpointing(False)
    assert not any(b.peft_checkpoint for b in tower.blocks())
    assert as_peft_block(tower.blocks()[0], 0).peft_sites == {}
