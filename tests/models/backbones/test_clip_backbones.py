"""CLIP vision/text backbones with READ adapters, on tiny random open_clip models."""
import os

os.environ.setdefault('HF_HUB_OFFLINE', '1')  # never reach a model hub from tests

import open_clip  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from open_clip.model import CLIP  # noqa: E402

from mmvpeft.models.peft import PEFTBlock  # noqa: E402
from mmvpeft.models.backbones.clip_text import CLIPTextBackbone  # noqa: E402
from mmvpeft.models.backbones.clip_vision import CLIPVisionBackbone  # noqa: E402
from mmvpeft.models.backbones.open_clip_utils import clip_mean_std, create_open_clip  # noqa: E402
from mmvpeft.registry import MODELS  # noqa: E402

R = 8
CTX = 16
EOT = 990  # above every word id (as in CLIP), so open_clip's argmax pooling finds it


def tiny_cfg(vocab_size=1000, **vision):
    return dict(
        embed_dim=32,
        vision_cfg=dict(image_size=32, patch_size=16, width=64, layers=2, head_width=32,
                        mlp_ratio=2.0, **vision),
        text_cfg=dict(context_length=CTX, vocab_size=vocab_size, width=64, heads=2, layers=2,
                      mlp_ratio=2.0))


@pytest.fixture(scope='module')
def ckpt(tmp_path_factory):
    """A tiny random CLIP saved as a state dict; returns (path, reference model)."""
    torch.manual_seed(1)  # not 0: towers without `pretrained` are built from init_seed 0
    clip = CLIP(**tiny_cfg()).eval()
    path = tmp_path_factory.mktemp('clip') / 'tiny_clip.pt'
    torch.save(clip.state_dict(), path)
    return str(path), clip


def vision(ckpt, **kwargs):
    kwargs.setdefault('adapter', dict(hidden_dim=R))
    return CLIPVisionBackbone(model_cfg=tiny_cfg(), pretrained=ckpt[0], **kwargs)


def text(ckpt, **kwargs):
    kwargs.setdefault('adapter', dict(hidden_dim=R))
    return CLIPTextBackbone(model_cfg=tiny_cfg(), pretrained=ckpt[0], **kwargs)


def read_adapters(backbone):
    """The READ adapters of a tower, in block order."""
    return [b.read_adapter for b in backbone.blocks() if hasattr(b, 'read_adapter')]


def randomize_up(backbone, seed=1):
    """Non-zero `up` so each adapter really changes the stream."""
    torch.manual_seed(seed)
    for adapter in read_adapters(backbone):
        nn.init.normal_(adapter.up.weight, std=0.5)
        nn.init.normal_(adapter.up.bias, std=0.1)


def random_text(b=3, length=10, lengths=(10, 6, 3), seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, EOT, (b, length), generator=g)
    mask = torch.arange(length)[None] < torch.tensor(lengths)[:, None]
    tokens[torch.arange(b), torch.tensor(lengths) - 1] = EOT
    tokens[~mask] = 0
    return tokens, mask


def test_registered():
    assert MODELS.get('CLIPVisionBackbone') is CLIPVisionBackbone
    assert MODELS.get('CLIPTextBackbone') is CLIPTextBackbone


# ------------------------------------------------------------- step-0 equivalence

@pytest.mark.parametrize('mode', ['tokens', 'cls'])
def test_vision_step0_equals_frozen_clip(ckpt, mode):
    _, clip = ckpt
    backbone = vision(ckpt, adapter_layers=(0, -1), adapter_mode=mode,
                      adapter=dict(hidden_dim=R, bidirectional=True)).eval()
    torch.manual_seed(0)
    imgs = torch.randint(0, 256, (2, 3, 2, 3, 32, 32), dtype=torch.uint8)  # (B, T, K, ...)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]]).bool()
    out = backbone(imgs, mask)

    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    frames = (imgs.reshape(-1, 3, 32, 32).float() / 255 - mean) / std
    ref = clip.encode_image(frames).reshape(2, 3, 2, -1).mean(2)
    assert out['feats'].shape == (2, 3, 32)
    torch.testing.assert_close(out['feats'], ref, rtol=1e-5, atol=1e-5)
    assert out['aux']['read_states'].shape == (2, 3, R)
    assert torch.count_nonzero(out['aux']['read_states'][1, 2]) == 0  # padded clip

    # Float input in [0, 1], one frame per clip, gives the same per-frame features.
    out1 = backbone(imgs[:, :, :1].float() / 255)
    torch.testing.assert_close(out1['feats'], clip.encode_image(
        frames.reshape(2, 3, 2, 3, 32, 32)[:, :, 0].reshape(-1, 3, 32, 32)).reshape(2, 3, -1),
        rtol=1e-5, atol=1e-5)


def test_vision_normalize_false_passes_pixels_through(ckpt):
    _, clip = ckpt
    backbone = vision(ckpt, normalize=False).eval()
    x = torch.randn(1, 2, 1, 3, 32, 32)
    torch.testing.assert_close(backbone(x)['feats'][0], clip.encode_image(x[0, :, 0]),
                               rtol=1e-5, atol=1e-5)


def test_text_step0_equals_frozen_clip(ckpt):
    _, clip = ckpt
    backbone = text(ckpt, adapter_layers=(0, 1), adapter=dict(hidden_dim=R, rnn_type='gru',
                                                              bidirectional=True)).eval()
    tokens, mask = random_text()
    out = backbone(tokens, mask)
    # Reference: open_clip on fixed context-length input (batch padded to 16).
    full = F.pad(tokens, (0, CTX - tokens.shape[1]))
    torch.testing.assert_close(out['pooled'], clip.encode_text(full), rtol=1e-5, atol=1e-5)
    x = clip.token_embedding(full) + clip.positional_embedding
    ref_feats = clip.ln_final(clip.transformer(x, attn_mask=clip.attn_mask))[:, :10]
    torch.testing.assert_close(out['feats'][mask], ref_feats[mask], rtol=1e-5, atol=1e-5)
    assert out['feats'].shape == (3, 10, 64) and out['pooled'].shape == (3, 32)
    assert torch.equal(out['mask'], mask)
    assert out['aux']['read_states'].shape == (3, 10, R)
    assert torch.count_nonzero(out['aux']['read_states'][~mask]) == 0


@pytest.mark.parametrize('mode', ['tokens', 'cls'])
def test_states_come_from_last_adapted_layer_cls(ckpt, mode):
    backbone = vision(ckpt, adapter_layers=(0, 1), adapter_mode=mode).eval()
    out = backbone(torch.rand(2, 3, 2, 3, 32, 32))  # B=2, T=3, K=2 -> F=6 frames
    last = read_adapters(backbone)[-1].last_states
    if mode == 'tokens':  # (B*N, F, r) with N=5 tokens, CLS first
        last = last.reshape(2, 5, 6, R)[:, 0]
    expected = last.reshape(2, 3, 2, R).mean(2)
    torch.testing.assert_close(out['aux']['read_states'], expected, rtol=0, atol=0)
    assert not torch.allclose(out['aux']['read_states'], read_adapters(backbone)[0].last_states.reshape(
        2, -1, 6, R)[:, 0].reshape(2, 3, 2, R).mean(2))

    tb = text(ckpt, adapter_layers=(0, 1))
    out = tb(*random_text())
    assert out['aux']['read_states'] is read_adapters(tb)[-1].last_states


def test_no_adapter_gives_no_states(ckpt):
    assert vision(ckpt, adapter=None)(torch.rand(1, 2, 1, 3, 32, 32))['aux'] == {}
    assert text(ckpt, adapter=None)(*random_text())['aux'] == {}


def test_tokenizer_to_text_backbone(tmp_path):
    """Real CLIP tokenizer, per-batch padding, equals encode_text at full length."""
    from mmvpeft.datasets.transforms.text import CLIPTokenize
    torch.manual_seed(0)
    clip = CLIP(**tiny_cfg(vocab_size=49408)).eval()
    path = tmp_path / 'clip.pt'
    torch.save(clip.state_dict(), path)
    backbone = CLIPTextBackbone(model_cfg=tiny_cfg(vocab_size=49408), pretrained=str(path),
                                adapter=dict(hidden_dim=R)).eval()
    tok = CLIPTokenize(context_length=CTX, trim_padding=True)
    queries = ['a person opens the door', 'dog', 'someone is cooking pasta in a kitchen at night']
    items = [tok(dict(query=q)) for q in queries]
    length = max(len(i['text_tokens']) for i in items)
    tokens = torch.zeros(3, length, dtype=torch.long)
    mask = torch.zeros(3, length, dtype=torch.bool)
    for row, item in enumerate(items):
        n = len(item['text_tokens'])
        tokens[row, :n] = torch.from_numpy(item['text_tokens'])
        mask[row, :n] = torch.from_numpy(item['text_mask'])
    ref = clip.encode_text(open_clip.tokenize(queries, context_length=CTX))
    torch.testing.assert_close(backbone(tokens, mask)['pooled'], ref, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------ recurrence direction / masking

@pytest.mark.parametrize('mode', ['tokens', 'cls'])
def test_vision_recurrence_over_time_and_batch(ckpt, mode):
    outs = {}
    for bidirectional in (False, True):
        backbone = vision(ckpt, adapter_layers=(0, 1), adapter_mode=mode,
                          adapter=dict(hidden_dim=R, bidirectional=bidirectional)).eval()
        randomize_up(backbone)
        torch.manual_seed(0)
        imgs = torch.rand(2, 4, 1, 3, 32, 32)
        changed = imgs.clone()
        changed[0, 2] = torch.rand(1, 3, 32, 32)  # sample 0, frame 2
        outs[bidirectional] = backbone(imgs), backbone(changed)
        plain = CLIPVisionBackbone(model_cfg=tiny_cfg(), pretrained=ckpt[0]).eval()
        # The adapters really act (up is non-zero now).
        assert not torch.allclose(outs[bidirectional][0]['feats'], plain(imgs)['feats'])

    a, b = outs[False]
    for key in ('feats', 'read_states'):
        a[key], b[key] = a.get(key, a['aux'].get(key)), b.get(key, b['aux'].get(key))
        torch.testing.assert_close(b[key][1], a[key][1], rtol=0, atol=0)  # other sample
        torch.testing.assert_close(b[key][0, :2], a[key][0, :2], rtol=0, atol=0)  # earlier
        assert not torch.allclose(b[key][0, 3], a[key][0, 3])  # later frame sees it
    a, b = outs[True]
    for key in ('feats', 'read_states'):
        a[key], b[key] = a.get(key, a['aux'].get(key)), b.get(key, b['aux'].get(key))
        torch.testing.assert_close(b[key][1], a[key][1], rtol=0, atol=0)
        assert not torch.allclose(b[key][0, :2], a[key][0, :2])  # bidirectional: earlier too


@pytest.mark.parametrize('bidirectional', [False, True])
def test_vision_padded_clips_do_not_leak(ckpt, bidirectional):
    backbone = vision(ckpt, adapter_layers=(0, 1),
                      adapter=dict(hidden_dim=R, bidirectional=bidirectional)).eval()
    randomize_up(backbone)
    torch.manual_seed(0)
    imgs = torch.rand(2, 4, 2, 3, 32, 32)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]).bool()
    changed = imgs.clone()
    changed[1, 2:] = torch.rand(2, 2, 3, 32, 32)
    a, b = backbone(imgs, mask), backbone(changed, mask)
    torch.testing.assert_close(b['feats'][1, :2], a['feats'][1, :2], rtol=0, atol=1e-6)
    torch.testing.assert_close(b['aux']['read_states'][1, :2], a['aux']['read_states'][1, :2], rtol=0, atol=1e-6)
    assert torch.count_nonzero(a['aux']['read_states'][1, 2:]) == 0
    # Each video alone, trimmed to its valid clips, gives the same valid outputs, also the
    # full video 0: if the masks reach the wrong rows (per-token recurrences of another
    # video), its later frames are treated as padding, which causality cannot prevent.
    for i, n in enumerate(mask.sum(1).tolist()):
        alone = backbone(imgs[i:i + 1, :n])
        torch.testing.assert_close(alone['feats'][0], a['feats'][i, :n], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(alone['aux']['read_states'][0], a['aux']['read_states'][i, :n], rtol=1e-5,
                                   atol=1e-5)
    # Padded clips pass through every adapter unchanged: plain CLIP features.
    plain = CLIPVisionBackbone(model_cfg=tiny_cfg(), pretrained=ckpt[0]).eval()
    torch.testing.assert_close(a['feats'][1, 2:], plain(imgs[1:, 2:])['feats'][0],
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('bidirectional', [False, True])
def test_text_padding_and_direction(ckpt, bidirectional):
    backbone = text(ckpt, adapter_layers=(0, -1),
                    adapter=dict(hidden_dim=R, bidirectional=bidirectional)).eval()
    randomize_up(backbone)
    tokens, mask = random_text()
    a = backbone(tokens, mask)
    plain = CLIPTextBackbone(model_cfg=tiny_cfg(), pretrained=ckpt[0]).eval()
    assert not torch.allclose(a['pooled'], plain(tokens, mask)['pooled'])

    # Junk in the padding changes nothing valid, even ids above EOT, which
    # would fool argmax-of-ids EOT pooling.
    junk = tokens.clone()
    junk[~mask] = torch.randint(EOT + 1, 1000, (int((~mask).sum()), ))
    b = backbone(junk, mask)
    torch.testing.assert_close(b['feats'][mask], a['feats'][mask], rtol=0, atol=1e-6)
    torch.testing.assert_close(b['aux']['read_states'], a['aux']['read_states'], rtol=0, atol=1e-6)
    torch.testing.assert_close(b['pooled'], a['pooled'], rtol=0, atol=1e-6)

    # A later word: earlier states change only for the bidirectional adapter
    # (CLIP's own attention is causal); other samples never change.
    later = tokens.clone()
    later[0, 5] = (later[0, 5] + 7) % (EOT - 1) + 1
    c = backbone(later, mask)
    torch.testing.assert_close(c['aux']['read_states'][1:], a['aux']['read_states'][1:], rtol=0, atol=0)
    torch.testing.assert_close(c['feats'][1:], a['feats'][1:], rtol=0, atol=0)
    assert not torch.allclose(c['aux']['read_states'][0, 6:], a['aux']['read_states'][0, 6:])
    if bidirectional:
        assert not torch.allclose(c['aux']['read_states'][0, :5], a['aux']['read_states'][0, :5])
        assert not torch.allclose(c['feats'][0, :5], a['feats'][0, :5])
    else:
        torch.testing.assert_close(c['aux']['read_states'][0, :5], a['aux']['read_states'][0, :5], rtol=0, atol=0)
        torch.testing.assert_close(c['feats'][0, :5], a['feats'][0, :5], rtol=0, atol=0)


# --------------------------------------------------------------- freezing / gradients

def _check_grads(backbone, loss):
    adapter_params = {id(p) for a in read_adapters(backbone) for p in a.parameters()}
    trainable = {id(p) for p in backbone.parameters() if p.requires_grad}
    assert trainable == adapter_params and adapter_params
    loss.backward()
    for name, p in backbone.named_parameters():
        if id(p) in adapter_params:
            assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name
        else:
            assert p.grad is None, name


def test_vision_gradients_and_freezing(ckpt):
    backbone = vision(ckpt, adapter_layers=(0, 1)).train()
    randomize_up(backbone)  # with zero `up`, down/rnn grads are exactly zero
    out = backbone(torch.rand(2, 3, 2, 3, 32, 32), torch.tensor([[1, 1, 1], [1, 0, 0]]).bool())
    _check_grads(backbone, out['feats'].square().sum() + out['aux']['read_states'].square().sum())


def test_text_gradients_and_freezing(ckpt):
    backbone = text(ckpt, adapter_layers=(0, 1), adapter=dict(hidden_dim=R, rnn_type='lstm')).train()
    randomize_up(backbone)
    out = backbone(*random_text())
    _check_grads(backbone, out['pooled'].square().sum() + out['aux']['read_states'].square().sum())


def test_step0_gradient_reaches_up(ckpt):
    backbone = vision(ckpt).train()
    out = backbone(torch.rand(1, 3, 1, 3, 32, 32))
    out['feats'].sum().backward()
    adapter = read_adapters(backbone)[0]
    assert torch.count_nonzero(adapter.up.weight.grad) > 0
    assert all(p.grad is not None for p in adapter.parameters())


def test_frozen_clip_stays_in_eval_mode(ckpt):
    cfg = tiny_cfg(patch_dropout=0.5)
    imgs = torch.rand(1, 2, 1, 3, 32, 32)
    frozen = CLIPVisionBackbone(model_cfg=cfg, pretrained=ckpt[0],
                                adapter=dict(hidden_dim=R, dropout=0.5)).train()
    assert frozen.training and not frozen.visual.training
    assert all(a.training for a in read_adapters(frozen))
    torch.manual_seed(0)
    torch.testing.assert_close(frozen(imgs)['feats'], frozen(imgs)['feats'])  # no patch dropout
    frozen.eval()
    assert not any(a.training for a in read_adapters(frozen))

    unfrozen = CLIPVisionBackbone(model_cfg=cfg, pretrained=ckpt[0], frozen=False).train()
    assert unfrozen.visual.training
    assert all(p.requires_grad for p in unfrozen.parameters())
    torch.manual_seed(0)
    assert not torch.allclose(unfrozen(imgs)['feats'], unfrozen(imgs)['feats'])

    tb = text(ckpt).train()
    assert not tb.transformer.training and not tb.token_embedding.training
    assert all(a.training for a in read_adapters(tb))


# ---------------------------------------------------------- loading / names / errors

def test_checkpoint_round_trip_and_names(ckpt):
    path, clip = ckpt
    ref = clip.state_dict()
    vb = vision(ckpt, adapter_layers=(0, 1))
    tb = text(ckpt, adapter_layers=(-1, ))
    vsd, tsd = vb.state_dict(), tb.state_dict()
    vision_keys = {k for k in ref if k.startswith('visual.')}
    text_keys = set(ref) - vision_keys - {'logit_scale'}
    # CLIP names unchanged after injection; the extra keys are the adapters'.
    assert vision_keys <= set(vsd) and text_keys <= set(tsd)
    assert all('.read_adapter.' in k for k in (set(vsd) - vision_keys) | (set(tsd) - text_keys))
    for k in vision_keys:
        torch.testing.assert_close(vsd[k], ref[k], rtol=0, atol=0)
    for k in text_keys:
        torch.testing.assert_close(tsd[k], ref[k], rtol=0, atol=0)
    # A raw CLIP state dict loads into an adapted backbone: only adapters missing.
    missing, unexpected = vb.load_state_dict(ref, strict=False)
    assert missing and all('.read_adapter.' in k for k in missing)
    assert set(unexpected) == set(ref) - vision_keys
    assert all(isinstance(vb.visual.transformer.resblocks[i], PEFTBlock)
               for i in (0, 1))


def test_random_init_differs_from_checkpoint(ckpt):
    # Guards the round-trip test: without `pretrained` the weights are different.
    vb = CLIPVisionBackbone(model_cfg=tiny_cfg())
    assert not torch.equal(vb.visual.proj, ckpt[1].visual.proj)


def test_loading_errors(ckpt, tmp_path):
    missing = tmp_path / 'nope' / 'clip.pt'
    with pytest.raises(FileNotFoundError, match='nope/clip.pt'):
        CLIPVisionBackbone(model_cfg=tiny_cfg(), pretrained=str(missing))
    with pytest.raises(FileNotFoundError, match='not_a_tag.pt'):
        create_open_clip('ViT-B-32', pretrained='not_a_tag.pt')
    with pytest.raises(ValueError, match="Unknown open_clip model name 'ViT-B-33'"):
        CLIPTextBackbone(model_name='ViT-B-33')
    with pytest.raises(IndexError, match=r'index 2 .*depth 2'):
        vision(ckpt, adapter_layers=(2, ))
    with pytest.raises(IndexError, match=r'index -3 .*depth 2'):
        text(ckpt, adapter_layers=(-3, ))
    with pytest.raises(ValueError, match='READ mode must be'):
        vision(ckpt, adapter_mode='patches')


def test_hub_tag_offline_error(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError('Name or service not known')

    monkeypatch.setattr(open_clip.factory, 'download_pretrained', offline)
    with pytest.raises(RuntimeError, match='local file path') as err:
        create_open_clip('ViT-B-32', pretrained='openai')
    assert 'openai' in str(err.value) and 'network' in str(err.value)


def test_input_validation(ckpt):
    vb = vision(ckpt)
    with pytest.raises(ValueError, match='expects 32x32'):
        vb(torch.rand(1, 2, 1, 3, 64, 64))
    with pytest.raises(ValueError, match='imgs must be'):
        vb(torch.rand(2, 3, 32, 32))
    # (B, T, 3, H, W): the K axis of the data contract is missing; never guessed.
    with pytest.raises(ValueError, match=r'imgs must be \(B, T, K, 3, H, W\).*K = 1.*'
                                         r'\(2, 4, 3, 32, 32\)'):
        vb(torch.rand(2, 4, 3, 32, 32))
    with pytest.raises(ValueError, match='imgs must be'):
        vb.forward_prefix(torch.rand(2, 4, 3, 32, 32))
    with pytest.raises(ValueError, match='right-padded'):
        vb(torch.rand(1, 3, 1, 3, 32, 32), torch.tensor([[0, 1, 1]]).bool())
    tb = text(ckpt)
    with pytest.raises(ValueError, match='context length'):
        tb(torch.ones(1, CTX + 1, dtype=torch.long), torch.ones(1, CTX + 1, dtype=torch.bool))
    with pytest.raises(ValueError, match='EOT'):
        tb(torch.ones(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.bool))


def test_mean_std():
    mean, std = clip_mean_std(create_open_clip(model_cfg=tiny_cfg()))
    assert mean == tuple(open_clip.OPENAI_DATASET_MEAN)
    assert std == tuple(open_clip.OPENAI_DATASET_STD)
