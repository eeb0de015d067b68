"""VideoCaptioner: a sample alone equals itself in a padded batch; trainable-only checkpoints."""
import pytest
import torch

from mmvpeft.models import VideoCaptioner

TINY_CLIP = dict(embed_dim=32,
                 vision_cfg=dict(image_size=32, patch_size=16, width=32, layers=1, head_width=16,
                                 mlp_ratio=1.0),
                 text_cfg=dict(context_length=16, width=32, heads=2, layers=1, mlp_ratio=1.0))
READ = [dict(type='READ', layers=(-1, ), hidden_dim=8)]


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def build(seed=0):
    torch.manual_seed(seed)
    model = VideoCaptioner(
        video_backbone=dict(type='CLIPVisionBackbone', model_cfg=TINY_CLIP, peft=READ),
        text_backbone=dict(type='CLIPTextBackbone', model_cfg=TINY_CLIP, peft=READ),
        decoder=dict(type='VideoTextDecoder', peft=READ, max_frames=8,
                     model_cfg=dict(width=32, heads=2, layers=1, context_length=16,
                                    vocab_size=49408),
                     vocab_texts=['a red blue circle square moves up down']),
        pvla_loss=dict(type='PVLALoss', num_iters=20), generation=dict(max_len=6))
    for n, p in model.named_parameters():  # move READ off its zero init
        if 'read_adapter.up' in n:
            torch.nn.init.normal_(p, std=0.5)
    return model.eval()


def item(seed, t, chunks):
    g = torch.Generator().manual_seed(seed)
    imgs = torch.randint(0, 256, (t, 1, 3, 32, 32), dtype=torch.uint8, generator=g)
    ctx = torch.zeros(chunks, 6, dtype=torch.long)
    for c in range(chunks):
        n = 3 + (seed + c) % 3
        ctx[c, :n] = torch.tensor([49406] + [320 + seed + c] * (n - 2) + [49407])
    return imgs, ctx


def batch_of(items):
    t = max(i[0].shape[0] for i in items)
    c = max(i[1].shape[0] for i in items)
    imgs = torch.zeros(len(items), t, 1, 3, 32, 32, dtype=torch.uint8)
    vmask = torch.zeros(len(items), t, dtype=torch.bool)
    ctx = torch.zeros(len(items), c, 6, dtype=torch.long)
    for b, (im, cx) in enumerate(items):
        imgs[b, :len(im)], vmask[b, :len(im)] = im, True
        ctx[b, :len(cx)] = cx
    tokens = torch.tensor([[49406, 320, 736, 49407, 0], [49406, 320, 1746, 2185, 49407]])
    return dict(imgs=imgs, video_mask=vmask, context_tokens=ctx, context_mask=ctx != 0,
                text_tokens=tokens[:len(items)], text_mask=tokens[:len(items)] != 0)


def test_sample_alone_equals_itself_in_a_padded_batch():
    model = build()
    short, long = item(1, 3, 1), item(2, 5, 2)
    both = batch_of([short, long])
    with torch.no_grad():
        logits = model(both, None, mode='tensor')
        alone = model(dict(batch_of([short]), text_tokens=both['text_tokens'][:1, :4],
                           text_mask=both['text_mask'][:1, :4]), None, mode='tensor')
    assert torch.allclose(logits[0, :4], alone[0], atol=1e-5)


def test_trainable_only_checkpoint_round_trip():
    model = build()
    inputs = batch_of([item(1, 3, 1), item(2, 5, 2)])
    losses = model.train()(inputs, None, mode='loss')
    assert set(losses) == {'loss_caption', 'loss_pvla'}
    state = model.state_dict()
    assert not any(k.startswith('video_backbone.visual.conv1') for k in state)
    assert any('decoder.token_embedding' in k for k in state)  # a random decoder trains
    other = build(seed=0)
    other.load_state_dict(state)
    model.eval()
    samples = [dict(vid='a'), dict(vid='b')]
    with torch.no_grad():
        a = model(inputs, samples, mode='predict')
        b = other.eval()(inputs, samples, mode='predict')
    assert [x['pred_tokens'] for x in a] == [x['pred_tokens'] for x in b]
    assert all(len(x['pred_tokens']) <= 6 for x in a)
