"""VideoTextRetriever on tiny random CLIP towers with PEFT methods."""
import pytest
import torch
import torch.nn.functional as F

from mmvpeft.registry import MODELS

TINY = dict(embed_dim=32,
            vision_cfg=dict(image_size=32, patch_size=16, width=64, layers=2, head_width=32,
                            mlp_ratio=2.0),
            text_cfg=dict(context_length=16, vocab_size=1000, width=64, heads=2, layers=2,
                          mlp_ratio=2.0))


def _model(video_peft=(), text_peft=(), **kwargs):
    torch.manual_seed(0)
    cfg = dict(type='VideoTextRetriever',
               video_backbone=dict(type='CLIPVisionBackbone', model_cfg=TINY,
                                   peft=list(video_peft)),
               text_backbone=dict(type='CLIPTextBackbone', model_cfg=TINY,
                                  peft=list(text_peft)), **kwargs)
    return MODELS.build(cfg)


def _batch(b=3, t=4, captions=(1, 1, 1), seed=0):
    g = torch.Generator().manual_seed(seed)
    imgs = torch.randint(0, 256, (b, t, 1, 3, 32, 32), dtype=torch.uint8, generator=g)
    video_mask = torch.ones(b, t, dtype=torch.bool)
    video_mask[-1, t - 1:] = False
    c = sum(captions)
    lengths = torch.randint(3, 8, (c, ), generator=g)
    tokens = torch.randint(1, 900, (c, 8), generator=g)
    text_mask = torch.arange(8)[None] < lengths[:, None]
    tokens[torch.arange(c), lengths - 1] = 999
    tokens[~text_mask] = 0
    index = torch.repeat_interleave(torch.arange(b), torch.tensor(captions))
    inputs = dict(imgs=imgs, video_mask=video_mask, text_tokens=tokens, text_mask=text_mask,
                  text_video_index=index)
    samples = [dict(vid=f'v{i}', caption_ids=[f'v{i}#{k}' for k in range(n)])
               for i, n in enumerate(captions)]
    return inputs, samples


def test_loss_is_symmetric_infonce_over_normalised_embeddings():
    model = _model([dict(type='TokenMixing')]).train()
    inputs, samples = _batch()
    losses = model(inputs, samples, mode='loss')
    assert set(losses) == {'loss_contrastive', 'logit_scale'}
    emb = model(inputs, mode='tensor')
    torch.testing.assert_close(emb['video_embed'].norm(dim=-1), torch.ones(3))
    logits = losses['logit_scale'] * emb['video_embed'] @ emb['text_embed'].T
    labels = torch.arange(3)
    ref = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    torch.testing.assert_close(losses['loss_contrastive'], ref, rtol=1e-5, atol=1e-6)
    total, log_vars = model.parse_losses(dict(losses))
    torch.testing.assert_close(total, losses['loss_contrastive'])
    assert 'logit_scale' in log_vars  # logged, never summed


def test_gradients_reach_only_what_the_methods_train():
    model = _model([dict(type='TokenMixing')], [dict(type='READ', layers=(-1, ),
                                                      hidden_dim=4)]).train()
    inputs, samples = _batch()
    total, _ = model.parse_losses(model(inputs, samples, mode='loss'))
    total.backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert 'logit_scale' in trainable
    assert all(n.startswith(('video_backbone.visual.transformer.resblocks.1.',
                             'text_backbone.transformer.resblocks.1.read_adapter.',
                             'logit_scale')) for n in trainable)
    for n, p in model.named_parameters():
        assert (p.grad is not None) == p.requires_grad or 'read_adapter.down' in n \
            or 'read_adapter.rnn' in n, n  # zero-init up: down/rnn get grad from step 2


def test_predict_groups_captions_by_video():
    model = _model().eval()
    inputs, samples = _batch(captions=(2, 1, 3))
    with torch.no_grad():
        preds = model(inputs, samples, mode='predict')
        emb = model(inputs, mode='tensor')
    assert [p['vid'] for p in preds] == ['v0', 'v1', 'v2']
    assert [p['text_embeds'].shape[0] for p in preds] == [2, 1, 3]
    torch.testing.assert_close(preds[2]['text_embeds'], emb['text_embed'][3:])
    torch.testing.assert_close(preds[1]['video_embed'], emb['video_embed'][1])


def test_pvla_pairs_each_caption_with_its_video():
    read = dict(type='READ', layers=(-1, ), hidden_dim=4)
    model = _model([read], [read], pvla_loss=dict(type='PVLALoss', num_iters=20)).train()
    inputs, samples = _batch()
    losses = model(inputs, samples, mode='loss')
    assert model.loss_keys == ('loss_contrastive', 'loss_pvla')
    assert losses['loss_pvla'] > 0
    no_read = _model(pvla_loss=dict(type='PVLALoss'))
    with pytest.raises(RuntimeError, match='no READ states'):
        no_read(inputs, samples, mode='loss')


def test_pairs_of_one_video_or_one_caption_are_not_negatives():
    from mmvpeft.models.tasks.video_text_retriever import pair_ids
    samples = [dict(vid='a', captions=['red circle']), dict(vid='b', captions=['blue square']),
               dict(vid='c', captions=['red circle']), dict(vid='a', captions=['a red disc']),
               dict(vid='d', captions=['green'])]
    ids = pair_ids(samples, list(range(5))).tolist()
    assert ids[0] == ids[2] == ids[3]  # same caption (a, c), same video (a, a)
    assert len({ids[0], ids[1], ids[4]}) == 3
    # The video rule on its own: b's caption links it to a's second pair, so all three
    # form one group (ids come from a group's first member, so this needs the union).
    chain = pair_ids([dict(vid='a', captions=['x']), dict(vid='b', captions=['y']),
                      dict(vid='a', captions=['y'])], [0, 1, 2]).tolist()
    assert chain[0] == chain[1] == chain[2]
    # Several captions of one video in a batch (test layout): one group.
    grouped = pair_ids([dict(vid='x', captions=['p', 'q']), dict(vid='y', captions=['r'])],
                       [0, 0, 1]).tolist()
    assert grouped[0] == grouped[1] != grouped[2]
