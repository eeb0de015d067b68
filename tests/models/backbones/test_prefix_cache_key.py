"""The key of a frozen-prefix cache covers everything that runs before the cached block, and
nothing after it."""
import pytest
import torch
from mmengine.registry import init_default_scope

from mmvpeft.models.backbones.prefix_cache import (MODEL_FIELDS, PrefixCacheError,
                                                   TextPrefixStore, check_meta, text_key)
from mmvpeft.registry import MODELS

TINY = dict(embed_dim=32,
            vision_cfg=dict(image_size=32, patch_size=16, width=32, layers=3, head_width=16),
            text_cfg=dict(context_length=16, vocab_size=1000, width=32, heads=2, layers=3))
READ_LAST = [dict(type='READ', layers=(-1, ), hidden_dim=8)]  # cache cut before block 2


def _tower(kind):
    init_default_scope('mmvpeft')
    torch.manual_seed(0)
    typ = 'CLIPVisionBackbone' if kind == 'vision' else 'CLIPTextBackbone'
    return MODELS.build(dict(type=typ, model_cfg=TINY, peft=READ_LAST))


def _changed(tower, tensor_of):
    before = tower.prefix_key()
    with torch.no_grad():
        tensor_of(tower).add_(1e-3)
    after = tower.prefix_key()
    return before, after


@pytest.mark.parametrize('kind', ['vision', 'text'])
def test_every_block_before_the_cut_is_in_the_key(kind):
    tower = _tower(kind)
    assert tower.prefix_start() == 2
    blocks = tower.blocks()
    # Block k-1 alone, block 0 alone: each invalidates the cache, naming the field.
    for index in (1, 0):
        before, after = _changed(tower, lambda t: next(t.blocks()[index].parameters()))
        assert before['prefix_sha256'] != after['prefix_sha256'], index
        with pytest.raises(PrefixCacheError, match='prefix_sha256'):
            check_meta(before, after, MODEL_FIELDS, 'cache')
    # A LayerNorm weight of block k-1 (not its first parameter) too.
    before, after = _changed(tower, lambda t: t.blocks()[1].ln_2.weight)
    assert before['prefix_sha256'] != after['prefix_sha256']
    # The embeddings run before the blocks.
    before, after = _changed(tower, lambda t: next(t.prefix_parameters()))
    assert before['prefix_sha256'] != after['prefix_sha256']
    # The adapted block itself runs after the cut: its weights do not touch the cache.
    before, after = _changed(tower, lambda t: next(blocks[2].parameters()))
    assert before == after


def test_pixel_normalisation_is_in_the_key():
    tower = _tower('vision')
    before, after = _changed(tower, lambda t: t.mean)
    assert before['prefix_sha256'] != after['prefix_sha256']


def test_text_store_reads_by_token_ids_and_pads(tmp_path):
    import numpy as np
    a, b = np.array([5, 6, 7]), np.array([5, 9])
    np.save(tmp_path / f'{text_key(a)}.npy', np.ones((3, 4), np.float32))
    np.save(tmp_path / f'{text_key(b)}.npy', np.full((2, 4), 2, np.float32))
    store = TextPrefixStore(str(tmp_path), max_bytes=40)  # room for one file: evicts
    tokens = torch.tensor([[5, 6, 7], [5, 9, 0]])
    mask = tokens > 0
    out = store.lookup(tokens, mask, torch.float32)
    assert out.shape == (2, 3, 4)
    assert out[0].eq(1).all() and out[1, :2].eq(2).all() and out[1, 2].eq(0).all()
    assert len(store._mem) == 1
    assert text_key([5, 6, 7]) != text_key([5, 6]) and text_key([1]) == text_key(np.array([1]))
    with pytest.raises(PrefixCacheError, match=r'token ids \[5, 8\]'):
        store.lookup(torch.tensor([[5, 8]]), torch.ones(1, 2, dtype=torch.bool), torch.float32)
