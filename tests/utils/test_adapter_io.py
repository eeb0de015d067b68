"""Adapter-only safetensors files: an exact round trip onto a freshly built frozen base for
READ, LoRA and token-mixing models, strict key matching, and the stored config."""
import json
import os.path as osp
import warnings

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmvpeft  # noqa: F401
from mmvpeft.registry import MODELS
from mmvpeft.utils.adapter_io import (adapter_state_dict, build_from_adapter, load_adapter,
                                      read_adapter, save_adapter)

TINY = dict(embed_dim=32,
            vision_cfg=dict(image_size=32, patch_size=16, width=32, layers=2, head_width=16),
            text_cfg=dict(context_length=8, vocab_size=1000, width=32, heads=2, layers=2))
METHODS = {
    'read': (dict(type='READ', layers=(-1, ), hidden_dim=8),
             dict(type='READ', layers=(-1, ), hidden_dim=8)),
    'lora': (dict(type='LoRA', rank=2), dict(type='LoRA', rank=2)),
    'token_mixing': (dict(type='TokenMixing', layers=(-1, )), None),
}


def _cfg(method):
    video_peft, text_peft = METHODS[method]
    return Config(dict(default_scope='mmvpeft', model=dict(
        type='MomentGrounder',
        video_backbone=dict(type='CLIPVisionBackbone', model_cfg=TINY, frozen=True,
                            peft=[video_peft]),
        text_backbone=dict(type='CLIPTextBackbone', model_cfg=TINY, frozen=True,
                           peft=[text_peft] if text_peft else []),
        encoder=dict(type='CrossModalEncoder', video_dim=32, text_dim=32, dim=32, num_heads=2,
                     num_fusion_layers=1, dropout=0.0),
        head=dict(type='DenseMomentHead', in_dim=32, hidden_dim=16))))


def _inputs():
    g = torch.Generator().manual_seed(1)
    return dict(imgs=torch.rand(2, 5, 1, 3, 32, 32, generator=g),
                video_mask=torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool),
                text_tokens=torch.randint(1, 999, (2, 6), generator=g),
                text_mask=torch.tensor([[1] * 6, [1] * 4 + [0] * 2], dtype=torch.bool))


def _build(cfg, seed):
    init_default_scope('mmvpeft')
    torch.manual_seed(seed)  # the "pretrained" frozen base: the same weights for one seed
    return MODELS.build(cfg.model).eval()


@pytest.mark.parametrize('method', sorted(METHODS))
def test_round_trip_is_exact(method, tmp_path):
    cfg = _cfg(method)
    trained = _build(cfg, seed=0)
    with torch.no_grad():  # "training": move every trained tensor off its initial value
        for p in trained.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    path = save_adapter(trained, str(tmp_path / f'{method}.safetensors'), cfg)
    expected = trained(_inputs())

    fresh = _build(cfg, seed=0)
    before = fresh(_inputs())
    assert not torch.equal(before['logits'], expected['logits'])  # the adapters matter
    load_adapter(fresh, path)
    got = fresh(_inputs())
    for key in ('logits', 'dist'):
        assert torch.equal(got[key], expected[key]), key

    rebuilt, rebuilt_cfg = build_from_adapter(path)
    assert rebuilt_cfg.model.type == 'MomentGrounder'
    # the stored config rebuilds the architecture; the file carries only trained tensors
    tensors, meta = read_adapter(path)
    trainable = {n for n, p in trained.named_parameters() if p.requires_grad}
    assert trainable <= set(tensors)
    assert not any(n in tensors for n, p in trained.named_parameters() if not p.requires_grad)
    assert set(tensors) == set(adapter_state_dict(rebuilt))


def test_adapter_file_is_small_and_strict(tmp_path):
    cfg = _cfg('read')
    model = _build(cfg, seed=0)
    path = save_adapter(model, str(tmp_path / 'read.safetensors'), cfg)
    full = sum(p.numel() for p in model.parameters())
    kept = sum(t.numel() for t in read_adapter(path)[0].values())
    assert kept < full / 2
    other = _build(_cfg('lora'), seed=0)
    with pytest.raises(KeyError, match='read.safetensors does not match the model'):
        load_adapter(other, path)
    with pytest.raises(ValueError, match='must end in .safetensors'):
        save_adapter(model, str(tmp_path / 'x.pth'), cfg)
    (tmp_path / 'junk.safetensors').write_bytes(b'not a file')
    with pytest.raises(ValueError, match='junk.safetensors'):
        read_adapter(str(tmp_path / 'junk.safetensors'))
    assert osp.getsize(path) > 0


def test_read_tacos_adapter_is_a_fortieth_of_the_full_model():
    """The README figure: adapter-only / full bytes for read_tacos (random ViT-B/32 weights,
    float32); the file adds only its metadata to these tensor bytes."""
    cfg = Config.fromfile(osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(
        __file__)))), 'configs', 'read_tacos.py'))
    for key in ('video_backbone', 'text_backbone'):
        cfg.model[key].pretrained = None
    model = _build(cfg, seed=0)
    kept = sum(t.numel() * t.element_size() for t in adapter_state_dict(model).values())
    model.save_trainable_only = False
    full = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert 0.024 < kept / full < 0.026, kept / full  # 15.6 MB of 620.8 MB


# ---- the frozen-base fingerprint in adapter files ----------------------------------------
def _seeded(cfg, init_seed):
    """``cfg`` with both random towers built from ``init_seed``."""
    cfg = Config(cfg.to_dict())
    for key in ('video_backbone', 'text_backbone'):
        cfg.model[key]['init_seed'] = init_seed
    return cfg


def test_adapter_on_another_frozen_base_is_refused_naming_both_fingerprints(tmp_path):
    from mmvpeft.utils.fingerprint import FrozenBaseMismatchError, frozen_fingerprint
    cfg = _cfg('read')
    trained = _build(cfg, seed=0)
    path = save_adapter(trained, str(tmp_path / 'read.safetensors'), cfg)
    stored = json.loads(read_adapter(path)[1]['frozen_fingerprint'])
    assert stored == json.loads(json.dumps(frozen_fingerprint(trained, trained.base_sources)))
    # The same config under another global RNG state is the same base: it loads silently.
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        load_adapter(_build(cfg, seed=99), path)

    other = _build(_seeded(cfg, 1), seed=0)  # another random frozen base
    mine = {p: v['weights_sha256'][:12] for p, v in stored['parts'].items()}
    theirs = {p: v['weights_sha256'][:12] for p, v in frozen_fingerprint(other)['parts'].items()}
    with pytest.raises(FrozenBaseMismatchError) as err:
        load_adapter(other, path)
    msg = str(err.value)
    assert 'read.safetensors' in msg and '--allow-base-mismatch' in msg
    for part in ('video_backbone', 'text_backbone'):
        assert f'{part}: frozen weights differ (sha256 {mine[part]} vs {theirs[part]})' in msg
    assert 'init_seed 0 (checkpoint) vs 1 (model)' in msg
    # The override of the .pth path: the model's allow_base_mismatch, or the argument.
    other.allow_base_mismatch = True
    with pytest.warns(RuntimeWarning, match='video_backbone: frozen weights differ'):
        load_adapter(other, path)
    with pytest.warns(RuntimeWarning, match='text_backbone: frozen weights differ'):
        load_adapter(_build(_seeded(cfg, 1), seed=0), path, allow_base_mismatch=True)
    # build_from_adapter builds from the stored config: the base it was trained on.
    rebuilt, _ = build_from_adapter(path)
    assert frozen_fingerprint(rebuilt) == frozen_fingerprint(trained)


def test_old_adapter_file_without_fingerprint_loads_with_a_warning(tmp_path):
    """A file written the old way (format adapter-v1, no fingerprint) still loads."""
    from safetensors.torch import save
    cfg = _cfg('read')
    trained = _build(cfg, seed=0)
    with torch.no_grad():
        for p in trained.parameters():
            if p.requires_grad:
                p.add_(0.1)
    tensors = adapter_state_dict(trained)
    meta = dict(mmvpeft_format='adapter-v1', config=cfg.pretty_text,
                trainable=json.dumps(sorted(n for n, p in trained.named_parameters()
                                            if p.requires_grad)))
    path = tmp_path / 'old.safetensors'
    path.write_bytes(save(tensors, metadata=meta))
    fresh = _build(cfg, seed=0)
    with pytest.warns(RuntimeWarning, match=r'old.safetensors records no frozen-base '
                      r'fingerprint'):
        load_adapter(fresh, str(path))
    assert all(torch.equal(dict(fresh.named_parameters())[n], t) for n, t in tensors.items()
               if n in dict(fresh.named_parameters()))
