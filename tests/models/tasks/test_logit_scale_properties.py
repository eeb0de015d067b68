"""Retrieval temperature: the inverse temperature never exceeds ``max_logit_scale`` (value
and gradient), and ``learn_logit_scale=False`` really freezes it."""
import math

import torch
import torch.nn.functional as F

from mmvpeft.registry import MODELS

TINY = dict(embed_dim=16,
            vision_cfg=dict(image_size=32, patch_size=16, width=32, layers=1, head_width=16,
                            mlp_ratio=2.0),
            text_cfg=dict(context_length=8, vocab_size=100, width=32, heads=2, layers=1,
                          mlp_ratio=2.0))


def _model(**kwargs):
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='VideoTextRetriever',
        video_backbone=dict(type='CLIPVisionBackbone', model_cfg=TINY,
                            peft=[dict(type='TokenMixing')]),
        text_backbone=dict(type='CLIPTextBackbone', model_cfg=TINY), **kwargs)).train()


def _batch(b=3, t=2):
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, 90, (b, 6), generator=g)
    tokens[:, -1] = 99
    return dict(imgs=torch.randint(0, 256, (b, t, 1, 3, 32, 32), dtype=torch.uint8, generator=g),
                video_mask=torch.ones(b, t, dtype=torch.bool), text_tokens=tokens,
                text_mask=torch.ones(b, 6, dtype=torch.bool),
                text_video_index=torch.arange(b))


def _samples(b=3):
    return [dict(vid=f'v{i}', caption_ids=[f'v{i}#0']) for i in range(b)]


def test_scale_is_clamped_at_max_logit_scale():
    model = _model(logit_scale_init=500.0, max_logit_scale=50.0)
    inputs = _batch()
    losses = model(inputs, _samples(), mode='loss')
    assert losses['logit_scale'].item() == 50.0  # exp(log 500) clamped
    emb = model(inputs, mode='tensor')
    logits = 50.0 * emb['video_embed'] @ emb['text_embed'].T
    labels = torch.arange(3)
    ref = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    torch.testing.assert_close(losses['loss_contrastive'], ref, rtol=1e-5, atol=1e-6)
    losses['loss_contrastive'].backward()
    # Beyond the clamp the temperature gets no gradient: it cannot creep further up.
    assert model.logit_scale.grad is not None and model.logit_scale.grad.item() == 0.0
    below = _model(logit_scale_init=10.0, max_logit_scale=50.0)
    out = below(inputs, _samples(), mode='loss')
    assert math.isclose(out['logit_scale'].item(), 10.0, rel_tol=1e-6)
    out['loss_contrastive'].backward()
    assert below.logit_scale.grad.item() != 0.0


def test_learn_logit_scale_false_freezes_it():
    model = _model(learn_logit_scale=False, logit_scale_init=20.0)
    assert not model.logit_scale.requires_grad
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and 'logit_scale' not in trainable
    before = model.logit_scale.detach().clone()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        total, _ = model.parse_losses(model(_batch(), _samples(), mode='loss'))
        total.backward()
        opt.step()
    assert model.logit_scale.grad is None
    assert torch.equal(model.logit_scale.detach(), before)
    learned = _model(learn_logit_scale=True, logit_scale_init=20.0)
    assert 'logit_scale' in [n for n, p in learned.named_parameters() if p.requires_grad]
