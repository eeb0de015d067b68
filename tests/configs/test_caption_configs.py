"""The captioning and summarization configs build (tiny random models) and train a step."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmvpeft.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY_CLIP = dict(embed_dim=32,
                 vision_cfg=dict(image_size=32, patch_size=16, width=32, layers=4,
                                 head_width=16, mlp_ratio=1.0),
                 text_cfg=dict(context_length=16, width=32, heads=2, layers=4, mlp_ratio=1.0))
TINY_DECODER = dict(width=32, heads=2, layers=4, vocab_size=49408, context_length=24,
                    mlp_ratio=1.0)


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny models: a second OpenMP thread only adds contention on a shared 2-core machine.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny(path):
    """The config with its towers and decoder swapped for tiny random ones (no hub here)."""
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', path))
    for key in ('video_backbone', 'text_backbone'):
        if cfg.model.get(key):
            cfg.model[key].update(model_cfg=TINY_CLIP, pretrained=None)
    cfg.model.decoder.update(model_cfg=TINY_DECODER, pretrained=None)
    cfg.model.generation.max_len = min(cfg.model.generation.max_len, 10)
    return cfg


def batch(b=2, t=4, context=False):
    g = torch.Generator().manual_seed(0)
    inputs = dict(imgs=torch.randint(0, 256, (b, t, 1, 3, 32, 32), dtype=torch.uint8,
                                     generator=g),
                  video_mask=torch.tensor([[True] * t, [True] * (t - 1) + [False]]),
                  text_tokens=torch.tensor([[49406, 320, 1746, 49407, 0],
                                            [49406, 320, 1901, 7219, 49407]]),
                  text_mask=torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool))
    if context:  # two transcript chunks for item 0, one for item 1
        inputs['context_tokens'] = torch.tensor([[[49406, 10, 11, 49407], [49406, 12, 49407, 0]],
                                                 [[49406, 13, 14, 49407], [0, 0, 0, 0]]])
        inputs['context_mask'] = inputs['context_tokens'] != 0
    samples = [dict(vid='a', captions=['a red circle']), dict(vid='b', captions=['a cat'])]
    return inputs, samples


@pytest.mark.parametrize('path, context', [('tokenmix_msrvtt_caption.py', False),
                                           ('read_how2_summarization.py', True)])
def test_config_builds_and_trains_a_step(path, context):
    cfg = tiny(path)
    init_default_scope('mmvpeft')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    inputs, samples = batch(context=context)
    losses = model(inputs, samples, mode='loss')
    assert set(losses) == set(model.loss_keys)
    total, _ = model.parse_losses(losses)
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=1e-2)
    opt.zero_grad()
    total.backward()
    opt.step()
    moved = [not torch.equal(a, p) for a, p in zip(before, params)]
    assert sum(moved) > 0.5 * len(moved)  # (PVLA-only or zero-init parts may not move yet)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    if path.startswith('tokenmix'):
        assert set(model.loss_keys) == {'loss_caption'}
        # Token mixing trains the last vision block; the frozen decoder only its memory.
        assert {n.split('.')[4] for n in trainable if n.startswith('video_backbone')} == {'3'}
        assert {n for n in trainable if n.startswith('decoder')} == {
            f'decoder.{n}' for n, _ in model.decoder.named_parameters()
            if n.startswith(('memory_', 'frame_embedding'))}
    else:
        assert set(model.loss_keys) == {'loss_caption', 'loss_pvla'}
        adapters = {n.split('.read_adapter')[0] for n in trainable if 'read_adapter' in n}
        assert {a.split('.')[0] for a in adapters} == {'video_backbone', 'text_backbone',
                                                       'decoder'}
        assert not [n for n in trainable if 'read_adapter' not in n
                    and not n.startswith(('decoder.memory_', 'decoder.frame_embedding'))]
    model.eval()
    with torch.no_grad():
        preds = model(inputs, samples, mode='predict')
    assert [p['vid'] for p in preds] == ['a', 'b']
    assert all(isinstance(p['pred_text'], str) for p in preds)
    assert all(len(p['pred_tokens']) <= cfg.model.generation.max_len for p in preds)


def test_context_chunks_pack_like_one_sequence():
    """Transcript chunks encoded one by one and packed = their valid tokens, in order."""
    from mmvpeft.models.tasks.video_captioner import pack_valid
    x = torch.arange(2 * 6, dtype=torch.float).view(2, 6, 1)
    mask = torch.tensor([[1, 1, 0, 1, 0, 0], [0, 0, 0, 1, 1, 1]], dtype=torch.bool)
    packed, pmask = pack_valid(x, mask)
    assert packed[0, :3, 0].tolist() == [0, 1, 3] and packed[1, :3, 0].tolist() == [9, 10, 11]
    assert pmask.tolist() == [[True] * 3, [True] * 3]


def test_beyond_the_decoder_context_is_refused_at_build():
    cfg = tiny('tokenmix_msrvtt_caption.py')
    cfg.model.generation.max_len = 30
    init_default_scope('mmvpeft')
    with pytest.raises(ValueError, match='context length 24'):
        MODELS.build(cfg.model)
