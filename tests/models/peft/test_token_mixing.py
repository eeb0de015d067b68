"""Token mixing against a plain re-derivation of methods.md section 1, on tiny random ViTs."""
import math

import pytest
import torch
import torch.nn.functional as F

import mmvpeft.models.peft.token_mixing as tm
from mmvpeft.models.peft import PEFTBlock, SequenceLayout, pretrained_parameters

D, HEADS, P = 16, 2, 4  # width, heads, patches per frame (2x2 grid)
N = 1 + P


def _mix(layers=(-1, ), alpha=0.8, **kwargs):
    return dict(type='TokenMixing', layers=layers, alpha=alpha, **kwargs)


def _layout(b, t, lengths=None):
    mask = None
    if lengths is not None:
        mask = torch.arange(t)[None] < torch.tensor(lengths)[:, None]
    return SequenceLayout(batch_size=b, num_frames=t, mask=mask, num_prefix_tokens=1,
                          grid_size=(2, 2))


def _tower(make_tower, peft=(), layers=3, **kwargs):
    tower = make_tower(list(peft), width=D, heads=HEADS, layers=layers, kind='vision',
                       grid_size=(2, 2), **kwargs)
    return tower.double()


def reference_mixing(block, h, lengths, alpha):
    """methods.md section 1, written out per video, per query frame, per key.

    Args:
        h: (B, T, N, D) ln_1 output. lengths: valid frames per video.

    Returns:
        (B, T, N, D) attention output; padded frames are left as zeros.
    """
    b_, t_, n_, d_ = h.shape
    dh = d_ // HEADS
    wq, wk, wv = block.attn.in_proj_weight.chunk(3)
    bq, bk, bv = block.attn.in_proj_bias.chunk(3)
    out = torch.zeros_like(h)
    for b in range(b_):
        tb = lengths[b]
        keys, owner, is_cls = [], [], []
        for t in range(tb):  # CLS of every valid frame
            keys.append(h[b, t, 0])
            owner.append(t)
            is_cls.append(True)
        for p in range(n_ - 1):  # the mosaic frame: patch p from frame p mod T
            f = p % tb
            keys.append(h[b, f, 1 + p])
            owner.append(f)
            is_cls.append(False)
        kv = torch.stack(keys)  # (T + P, D)
        assert kv.shape[0] == tb + n_ - 1
        k, v = kv @ wk.T + bk, kv @ wv.T + bv
        for t in range(tb):
            q = h[b, t] @ wq.T + bq  # (N, D)
            heads = []
            for hd in range(HEADS):
                sl = slice(hd * dh, (hd + 1) * dh)
                logits = q[:, sl] @ k[:, sl].T / math.sqrt(dh)  # (N, T + P)
                for j in range(kv.shape[0]):
                    if not is_cls[j] and owner[j] != t:
                        logits[:, j] = logits[:, j] * alpha
                heads.append(logits.softmax(-1) @ v[:, sl])
            out[b, t] = block.attn.out_proj(torch.cat(heads, -1))
    return out


def test_registered_vision_only_and_adds_no_parameters(make_tower):
    frozen = _tower(make_tower)
    mixed = _tower(make_tower, [_mix()])
    assert set(mixed.state_dict()) == set(frozen.state_dict())  # no new module, same names
    assert isinstance(mixed.blocks()[-1], PEFTBlock)
    with pytest.raises(ValueError, match='TokenMixing does not apply to a text tower'):
        make_tower([_mix()], width=D, kind='text')


def test_trains_exactly_the_mixing_blocks(make_tower):
    tower = _tower(make_tower, [_mix(layers=(0, -1))])
    trainable = {n for n, p in tower.named_parameters() if p.requires_grad}
    expected = {f'transformer.resblocks.{i}.{n}' for i in (0, 2)
                for n, _ in tower.blocks()[i].named_parameters()}
    assert trainable == expected
    per_block = sum(p.numel() for p in tower.blocks()[0].parameters())
    assert sum(p.numel() for p in tower.methods[0].trainable(tower)) == 2 * per_block
    frozen_only = _tower(make_tower, [_mix(train_blocks=False)])
    assert not any(p.requires_grad for p in frozen_only.parameters())


@pytest.mark.parametrize('alpha', [0.8, 0.5, 1.0])
def test_equals_plain_rederivation(make_tower, alpha):
    tower = _tower(make_tower, [_mix(layers=(0, ), alpha=alpha)], layers=1)
    block = tower.blocks()[0]
    b, t, lengths = 3, 3, [3, 2, 1]
    torch.manual_seed(1)
    h = torch.randn(b, t, N, D, dtype=torch.float64)
    layout = _layout(b, t, lengths)
    got = block.token_mixer.attention(block, h.reshape(b * t, N, D), None, layout)
    got = got.reshape(b, t, N, D)
    ref = reference_mixing(block, h, lengths, alpha)
    for i, tb in enumerate(lengths):
        torch.testing.assert_close(got[i, :tb], ref[i, :tb], rtol=1e-12, atol=1e-12)


def test_one_frame_equals_the_unmodified_block(make_tower):
    frozen = _tower(make_tower)
    mixed = _tower(make_tower, [_mix(layers=(0, 1, 2), alpha=0.5)])
    x = torch.randn(4, N, D, dtype=torch.float64)  # 4 videos of one frame
    torch.testing.assert_close(mixed(x, _layout(4, 1)), frozen(x), rtol=1e-12, atol=1e-12)


def test_frames_interact_only_in_mixing_blocks(make_tower):
    tower = _tower(make_tower, [_mix(layers=(-1, ))])
    b, t = 2, 3
    x = torch.randn(b * t, N, D, dtype=torch.float64)
    seen = []
    hook = tower.blocks()[1].register_forward_hook(lambda m, a, out: seen.append(out))
    y = tower(x, _layout(b, t)).reshape(b, t, N, D)
    x2 = x.clone()
    x2[1] += torch.randn(N, D, dtype=torch.float64)  # video 0, frame 1
    y2 = tower(x2, _layout(b, t)).reshape(b, t, N, D)
    hook.remove()
    before, before2 = (s.reshape(b, t, N, D) for s in seen)
    # Up to the mixing block, frame 0 never sees frame 1 ...
    torch.testing.assert_close(before2[0, 0], before[0, 0], rtol=0, atol=0)
    # ... the mixing block mixes it in (CLS key of frame 1 reaches every query) ...
    assert not torch.allclose(y2[0, 0], y[0, 0])
    # ... and other videos never see it.
    torch.testing.assert_close(y2[1], y[1], rtol=0, atol=0)


def test_key_value_set_has_t_plus_p_tokens(make_tower, monkeypatch):
    tower = _tower(make_tower, [_mix()], layers=1)
    shapes = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, **kwargs):
        shapes.append((tuple(q.shape), tuple(k.shape), tuple(v.shape)))
        return real(q, k, v, **kwargs)

    monkeypatch.setattr(tm.F, 'scaled_dot_product_attention', spy)
    b, t = 2, 3
    tower(torch.randn(b * t, N, D, dtype=torch.float64), _layout(b, t))
    dh = D // HEADS
    assert shapes == [((b * t, HEADS, N, dh), (b * t, HEADS, t + P, dh),
                       (b * t, HEADS, t + P, dh))]


def test_mosaic_takes_patch_p_from_frame_p_mod_t():
    src = tm.mosaic_sources(7, torch.tensor([3, 2, 1]))
    assert src.tolist() == [[0, 1, 2, 0, 1, 2, 0], [0, 1, 0, 1, 0, 1, 0], [0] * 7]


def test_alpha_scales_only_cross_frame_patch_logits(make_tower, monkeypatch):
    b, t = 1, 3
    torch.manual_seed(0)
    h = torch.randn(b * t, N, D, dtype=torch.float64)
    captured = {}
    real = F.scaled_dot_product_attention

    def spy(q, k, v, **kwargs):
        captured['logits'] = q @ k.transpose(-1, -2)
        return real(q, k, v, **kwargs)

    monkeypatch.setattr(tm.F, 'scaled_dot_product_attention', spy)
    logits = {}
    for alpha in (1.0, 0.3):
        tower = _tower(make_tower, [_mix(alpha=alpha)], layers=1)
        block = tower.blocks()[0]
        block.token_mixer.attention(block, h, None, _layout(b, t))
        logits[alpha] = captured['logits']  # (B*T, H, N, T + P)
    ratio = logits[0.3] / logits[1.0]
    src = tm.mosaic_sources(P, torch.tensor([t]))[0]
    for frame in range(t):
        for j in range(t + P):
            cross_patch = j >= t and src[j - t] != frame
            expected = 0.3 if cross_patch else 1.0
            torch.testing.assert_close(ratio[frame, :, :, j],
                                       torch.full_like(ratio[frame, :, :, j], expected))


def test_padded_frames_never_change_valid_frames(make_tower):
    tower = _tower(make_tower, [_mix(layers=(1, 2))])
    t = 4
    torch.manual_seed(2)
    video = torch.randn(2 * N, D, dtype=torch.float64).reshape(2, N, D)  # 2 valid frames
    other = torch.randn(t, N, D, dtype=torch.float64)
    alone = tower(video, _layout(1, 2)).reshape(2, N, D)
    for pad_value in (0.0, 5.0):
        padded = torch.cat([other, video, torch.full((t - 2, N, D), pad_value,
                                                     dtype=torch.float64)])
        out = tower(padded, _layout(2, t, [t, 2])).reshape(2, t, N, D)
        torch.testing.assert_close(out[1, :2], alone, rtol=1e-12, atol=1e-12)


def test_mixing_in_a_batch_equals_each_video_alone(make_tower):
    tower = _tower(make_tower, [_mix()])
    b, t = 3, 2
    x = torch.randn(b * t, N, D, dtype=torch.float64)
    batch = tower(x, _layout(b, t)).reshape(b, t, N, D)
    for i in range(b):
        alone = tower(x[i * t:(i + 1) * t], _layout(1, t))
        torch.testing.assert_close(batch[i], alone.reshape(t, N, D), rtol=1e-12, atol=1e-12)


def test_token_mixing_and_read_on_one_block_train(make_tower):
    tower = _tower(make_tower, [_mix(layers=(-1, )),
                                dict(type='READ', layers=(-1, ), hidden_dim=4)])
    block = tower.blocks()[-1]
    assert block.peft_sites == {'attention': ['token_mixer'], 'mlp_branch': ['read_adapter']}
    own = {id(p) for p in pretrained_parameters(block)}
    assert own == {id(p) for n, p in block.named_parameters() if 'read_adapter' not in n}
    tower.train()
    before = {k: v.clone() for k, v in tower.state_dict().items()}
    opt = torch.optim.SGD([p for p in tower.parameters() if p.requires_grad], lr=0.1)
    b, t = 2, 3
    layout = _layout(b, t, [3, 2])
    out = tower(torch.randn(b * t, N, D, dtype=torch.float64), layout)
    (out.square().mean() + layout.aux['read_states_raw'][-1].square().mean()).backward()
    opt.step()
    changed = {k for k, v in tower.state_dict().items() if not torch.equal(v, before[k])}
    last = 'transformer.resblocks.2.'
    assert changed and all(k.startswith(last) for k in changed)
    assert any('read_adapter' in k for k in changed)
    assert any(k.startswith(last + 'attn.') for k in changed)


def test_two_attention_owners_on_one_block_fail_naming_both(make_tower):
    with pytest.raises(ValueError, match='TokenMixing and TokenMixing both need the attention '
                                         'of block 2'):
        _tower(make_tower, [_mix(layers=(-1, )), _mix(layers=(0, 2))])


def test_through_the_vision_backbone_with_padded_clips():
    from mmvpeft.models.backbones import CLIPVisionBackbone
    cfg = dict(embed_dim=32,
               vision_cfg=dict(image_size=32, patch_size=16, width=64, layers=2,
                               head_width=32, mlp_ratio=2.0),
               text_cfg=dict(context_length=16, vocab_size=1000, width=64, heads=2, layers=2))
    torch.manual_seed(0)
    backbone = CLIPVisionBackbone(model_cfg=cfg, peft=[_mix()]).eval()
    imgs = torch.rand(2, 3, 1, 3, 32, 32)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]]).bool()
    out = backbone(imgs, mask)['feats']
    alone = backbone(imgs[1:, :2])['feats']
    torch.testing.assert_close(out[1, :2], alone[0], rtol=1e-5, atol=1e-5)
    trainable = {n for n, p in backbone.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith('visual.transformer.resblocks.1.') for n in trainable)
