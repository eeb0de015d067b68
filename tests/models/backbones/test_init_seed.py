"""Random-weight CLIP towers come from the config's ``init_seed``, not the global RNG."""
import pytest
import torch

from mmvpeft.models.backbones import create_open_clip
from mmvpeft.models.backbones.clip_text import CLIPTextBackbone
from mmvpeft.models.backbones.clip_vision import CLIPVisionBackbone
from mmvpeft.utils.fingerprint import base_source, frozen_fingerprint

TINY = dict(embed_dim=16,
            vision_cfg=dict(image_size=16, patch_size=8, width=16, layers=1, head_width=8),
            text_cfg=dict(context_length=8, vocab_size=100, width=16, heads=2, layers=1))


def _weights(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize('tower', [CLIPVisionBackbone, CLIPTextBackbone])
def test_same_seed_same_tower_whatever_the_global_rng(tower):
    torch.manual_seed(0)
    first = _weights(tower(model_cfg=TINY, peft=[]))
    torch.manual_seed(1)
    torch.rand(100)  # some unrelated draws before the build
    second = _weights(tower(model_cfg=TINY, peft=[]))
    assert _equal(first, second)
    other = _weights(tower(model_cfg=TINY, peft=[], init_seed=1))
    assert not _equal(first, other)
    # None keeps the old behaviour: the global RNG decides
    torch.manual_seed(1)
    old = _weights(tower(model_cfg=TINY, peft=[], init_seed=None))
    torch.manual_seed(2)
    assert not _equal(old, _weights(tower(model_cfg=TINY, peft=[], init_seed=None)))


def test_building_leaves_the_global_rng_where_it_was():
    torch.manual_seed(5)
    expected = torch.rand(4)
    torch.manual_seed(5)
    create_open_clip(model_cfg=TINY)
    assert torch.equal(torch.rand(4), expected)


def test_both_towers_are_the_halves_of_one_seeded_clip():
    clip = create_open_clip(model_cfg=TINY, init_seed=3)
    vision = CLIPVisionBackbone(model_cfg=TINY, peft=[], init_seed=3)
    text = CLIPTextBackbone(model_cfg=TINY, peft=[], init_seed=3)
    assert torch.equal(vision.visual.conv1.weight, clip.visual.conv1.weight)
    assert torch.equal(text.token_embedding.weight, clip.token_embedding.weight)


def test_bad_init_seed_is_named():
    for bad in (-1, 1.5, '0', True):
        with pytest.raises(ValueError, match='init_seed must be an integer'):
            create_open_clip(model_cfg=TINY, init_seed=bad)


def test_the_fingerprint_names_the_seed_of_a_random_tower():
    cfg = dict(type='CLIPVisionBackbone', model_cfg=TINY, init_seed=4)
    assert base_source(cfg)['init_seed'] == 4
    assert base_source(dict(type='CLIPTextBackbone', model_cfg=TINY))['init_seed'] == 0
    assert 'init_seed' not in base_source(dict(cfg, pretrained='openai'))
    a = frozen_fingerprint(CLIPVisionBackbone(model_cfg=TINY, peft=[], init_seed=4))
    b = frozen_fingerprint(CLIPVisionBackbone(model_cfg=TINY, peft=[], init_seed=5))
    assert a['parts'] != b['parts']
