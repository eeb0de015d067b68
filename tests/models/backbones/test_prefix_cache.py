"""Frozen-prefix cache: cached and uncached towers give the same losses and gradients; what
cannot be cached says so; stale caches are refused."""
import copy

import pytest
import torch
from mmengine.registry import init_default_scope

from mmvpeft.models.backbones.prefix_cache import PrefixCacheError, require_prefix_start
from mmvpeft.registry import MODELS

TINY = dict(embed_dim=32,
            vision_cfg=dict(image_size=32, patch_size=16, width=32, layers=3, head_width=16),
            text_cfg=dict(context_length=16, vocab_size=1000, width=32, heads=2, layers=3))
READ = dict(type='READ', layers=(-1, ), hidden_dim=8)
CONFIGS = {
    'read': ([READ], [dict(READ, layers=(-2, -1))]),
    'token_mixing': ([dict(type='TokenMixing', layers=(-1, )), READ], [READ]),
}


def _model(vpeft, tpeft):
    init_default_scope('mmvpeft')
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='MomentGrounder',
        video_backbone=dict(type='CLIPVisionBackbone', model_cfg=TINY, peft=vpeft),
        text_backbone=dict(type='CLIPTextBackbone', model_cfg=TINY, peft=tpeft),
        encoder=dict(type='CrossModalEncoder', video_dim=32, text_dim=32, dim=32, num_heads=2),
        head=dict(type='DenseMomentHead', in_dim=32, hidden_dim=16),
        pvla_loss=dict(type='PVLALoss', num_iters=20)))
    # Non-zero adapters and a trained look, so gradients reach every adapted block.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad and 'up.' in name:
                p.normal_(0, 0.1)
    return model.train()


def _batch():
    g = torch.Generator().manual_seed(1)
    video_mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    text_mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    tokens = torch.randint(1, 998, (2, 6), generator=g) * text_mask
    tokens[:, 0] = 998  # the start token (the tiny vocabulary's stand-in for CLIP's SOT)
    inputs = dict(imgs=torch.randint(0, 256, (2, 5, 1, 3, 32, 32), generator=g,
                                     dtype=torch.uint8),
                  video_mask=video_mask, text_tokens=tokens, text_mask=text_mask)
    samples = [dict(qid=i, gt_windows=torch.tensor([[1.0, 4.0]]).numpy(), clip_len=1.0,
                    num_clips=5, duration=5.0) for i in range(2)]
    return inputs, samples


def _losses_and_grads(model, inputs, samples):
    model.zero_grad()
    torch.manual_seed(2)
    losses = model(inputs, samples, mode='loss')
    total, _ = model.parse_losses(losses)
    total.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach() for k, v in losses.items()}, grads


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_cached_prefix_gives_the_same_losses_and_gradients(name):
    model = _model(*CONFIGS[name])
    inputs, samples = _batch()
    vt, tt = model.video_backbone, model.text_backbone
    assert vt.prefix_start() == 2 and tt.prefix_start() == (1 if name == 'read' else 2)
    ref_losses, ref_grads = _losses_and_grads(model, inputs, samples)
    # What the cache stores: each video and query on its own, valid clips / tokens only,
    # then padded by the collate (zeros at padding).
    vprefix = torch.zeros(2, 5, 1, 5, 32)
    tprefix = torch.zeros(2, 6, 32)
    for i in range(2):
        nv, nl = int(inputs['video_mask'][i].sum()), int(inputs['text_mask'][i].sum())
        vprefix[i, :nv] = vt.forward_prefix(inputs['imgs'][i:i + 1, :nv])[0]
        tprefix[i, :nl] = tt.forward_prefix(inputs['text_tokens'][i:i + 1, :nl],
                                            inputs['text_mask'][i:i + 1, :nl])[0]
    # fp32: the per-query text matmuls round differently from the padded batch's (~4e-7).
    for dtype, tol in ((torch.float32, dict(rtol=1e-5, atol=1e-6)),
                       (torch.float16, dict(rtol=2e-2, atol=2e-3))):
        cached = dict(video_prefix=vprefix.to(dtype), text_prefix=tprefix.to(dtype),
                      video_mask=inputs['video_mask'], text_mask=inputs['text_mask'])
        losses, grads = _losses_and_grads(model, cached, samples)
        assert set(losses) == set(ref_losses) and set(grads) == set(ref_grads)
        for k in losses:
            torch.testing.assert_close(losses[k], ref_losses[k], **tol, msg=f'{dtype} {k}')
        for k in grads:
            scale = ref_grads[k].abs().max().clamp_min(1e-8)
            # Relative to the tensor's largest entry: fp32 rounding reaches ~2e-6 there
            # (encoder.text_proj after the token-mixing tower), so float32 allows 2e-5.
            gtol = dict(tol, atol=2e-5) if dtype == torch.float32 else tol
            torch.testing.assert_close(grads[k] / scale, ref_grads[k] / scale, **gtol,
                                       msg=f'{dtype} grad {k}')
    # The prefix of the same padded batch is the same computation split in two: bit-exact.
    batched = dict(video_prefix=vt.forward_prefix(inputs['imgs']),
                   text_prefix=tt.forward_prefix(inputs['text_tokens'], inputs['text_mask']),
                   video_mask=inputs['video_mask'], text_mask=inputs['text_mask'])
    losses, grads = _losses_and_grads(model, batched, samples)
    assert all(torch.equal(losses[k], ref_losses[k]) for k in losses)
    assert all(torch.equal(grads[k], ref_grads[k]) for k in grads)


@pytest.mark.parametrize('peft, match', [
    ([dict(type='LoRA', layers=None)], 'LoRA'),
    ([dict(type='VisualPrompt', num_tokens=2, deep=True)], 'VisualPrompt'),
    ([dict(type='FullFinetune')], 'not frozen|FullFinetune'),
])
def test_methods_touching_block_0_cannot_be_cached(peft, match):
    init_default_scope('mmvpeft')
    tower = MODELS.build(dict(type='CLIPVisionBackbone', model_cfg=TINY, peft=peft))
    assert tower.prefix_start() == 0
    with pytest.raises(PrefixCacheError, match=f'no frozen-prefix cache is possible.*({match})'):
        require_prefix_start(tower)


def test_prefix_start_follows_the_first_touched_block():
    init_default_scope('mmvpeft')
    build = lambda peft: MODELS.build(  # noqa: E731
        dict(type='CLIPTextBackbone', model_cfg=TINY, peft=peft))
    assert build([dict(READ, layers=(1, 2))]).prefix_start() == 1
    assert build([dict(type='PartialFinetune', layers=(-1, ))]).prefix_start() == 2
    assert build([dict(type='LinearProbe')]).prefix_start() == 3  # nothing in the blocks
    assert build([dict(type='BitFit')]).prefix_start() == 0


def test_tower_refuses_a_cache_of_other_weights(tmp_path):
    from mmvpeft.apis.prefix_cache import _prepare_dir
    init_default_scope('mmvpeft')
    cfg = dict(type='CLIPVisionBackbone', model_cfg=TINY, peft=[READ])
    torch.manual_seed(0)
    tower = MODELS.build(copy.deepcopy(cfg))
    _prepare_dir(str(tmp_path / 'video'), dict(tower.prefix_key(), dtype='float16'), False)
    torch.manual_seed(0)
    MODELS.build(dict(cfg, prefix_cache=str(tmp_path / 'video')))  # same weights: fine
    with pytest.raises(PrefixCacheError, match='prefix_sha256'):  # another random tower
        MODELS.build(dict(cfg, init_seed=1, prefix_cache=str(tmp_path / 'video')))
    torch.manual_seed(0)
    with pytest.raises(PrefixCacheError, match='start_block'):
        MODELS.build(dict(cfg, peft=[dict(READ, layers=(-2, -1))],
                          prefix_cache=str(tmp_path / 'video')))
    with pytest.raises(PrefixCacheError, match='meta.json not found'):
        MODELS.build(dict(cfg, prefix_cache=str(tmp_path)))


def test_pvla_can_leave_the_text_start_token_out():
    model = _model(*CONFIGS['read'])
    inputs, samples = _batch()
    with torch.no_grad():
        video = model.video_backbone(inputs['imgs'], inputs['video_mask'])['aux']['read_states']
        text = model.text_backbone(inputs['text_tokens'],
                                   inputs['text_mask'])['aux']['read_states']
        # The start token's state is the same for every query.
        torch.testing.assert_close(text[0, 0], text[1, 0])
        default = model(inputs, samples, 'loss')['loss_pvla']
        model.pvla_text_start = False
        skipped = model(inputs, samples, 'loss')['loss_pvla']
    ref = model.pvla_loss(video, text[:, 1:], inputs['video_mask'], inputs['text_mask'][:, 1:])
    torch.testing.assert_close(skipped, ref, rtol=1e-6, atol=0)
    assert not torch.allclose(skipped, default)


@pytest.mark.parametrize('peft', [
    [dict(READ, layers=(-2, -1))],
    [dict(READ, layers=(-1, ), mode='cls'), dict(type='LoRA', layers=(-1, ), rank=2)],
    [dict(type='HoulsbyAdapter', layers=(-1, ), hidden_dim=4)],
    [],
])
def test_last_block_computes_only_the_pooled_token(peft):
    init_default_scope('mmvpeft')
    torch.manual_seed(0)
    tower = MODELS.build(dict(type='CLIPVisionBackbone', model_cfg=TINY, peft=peft,
                              pooled_only_last_block=True)).double()
    with torch.no_grad():
        for p in tower.parameters():
            if p.requires_grad:
                p.normal_(0, 0.1)
    assert tower.pooled_only
    imgs = torch.rand(2, 4, 1, 3, 32, 32, dtype=torch.float64)
    mask = torch.tensor([[True] * 4, [True] * 2 + [False] * 2])
    outs = []
    for on in (True, False):
        assert tower.set_pooled_only(on) == on
        tower.zero_grad()
        out = tower(imgs, mask)
        loss = out['feats'][mask].pow(2).sum()
        if 'read_states' in out['aux']:
            loss = loss + out['aux']['read_states'].sum()
        if any(p.requires_grad for p in tower.parameters()):
            loss.backward()
        outs.append((out, {n: p.grad.clone() for n, p in tower.named_parameters()
                           if p.grad is not None}))
    (fast, g_fast), (full, g_full) = outs
    torch.testing.assert_close(fast['feats'], full['feats'], rtol=1e-12, atol=1e-12)
    for k in full['aux']:
        torch.testing.assert_close(fast['aux'][k], full['aux'][k], rtol=1e-12, atol=1e-12)
    assert g_fast.keys() == g_full.keys()
    for k in g_full:
        torch.testing.assert_close(g_fast[k], g_full[k], rtol=1e-10, atol=1e-12)


def test_pooled_only_is_off_under_token_mixing_in_the_last_block():
    init_default_scope('mmvpeft')
    tower = MODELS.build(dict(type='CLIPVisionBackbone', model_cfg=TINY,
                              peft=[dict(type='TokenMixing', layers=(-1, ))],
                              pooled_only_last_block=True))
    assert not tower.pooled_only
