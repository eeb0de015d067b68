"""CLIPTokenize: open_clip BPE tokens and valid-token mask for a query."""
import pickle

import numpy as np
import open_clip
import pytest

from mmvpeft.datasets.transforms.tokenize import CLIPTokenize
from mmvpeft.registry import TRANSFORMS

SOT, EOT = 49406, 49407


def test_registered():
    assert TRANSFORMS.get('CLIPTokenize') is CLIPTokenize


def test_matches_open_clip_and_mask():
    query = 'A man opens the fridge.'
    out = CLIPTokenize()(dict(query=query, other=1))
    ref = open_clip.tokenize([query])[0].numpy()
    assert out['other'] == 1
    assert out['text_tokens'].dtype == np.int64 and out['text_tokens'].shape == (77, )
    np.testing.assert_array_equal(out['text_tokens'], ref)
    n = int((ref != 0).sum())
    assert out['text_tokens'][0] == SOT and out['text_tokens'][n - 1] == EOT
    assert out['text_mask'].dtype == np.bool_
    np.testing.assert_array_equal(out['text_mask'], np.arange(77) < n)


def test_trim_padding():
    query = 'a dog runs'
    full = CLIPTokenize(context_length=16)(dict(query=query))
    trimmed = CLIPTokenize(context_length=16, trim_padding=True)(dict(query=query))
    n = int(full['text_mask'].sum())
    assert n == 5 and full['text_tokens'].shape == (16, )
    assert trimmed['text_tokens'].shape == (n, ) and trimmed['text_mask'].all()
    np.testing.assert_array_equal(trimmed['text_tokens'], full['text_tokens'][:n])
    assert trimmed['text_tokens'][-1] == EOT


def test_truncation_keeps_eot():
    query = ' '.join(['word'] * 50)
    out = CLIPTokenize(context_length=8, trim_padding=True)(dict(query=query))
    tokens = out['text_tokens']
    assert tokens.shape == (8, ) and out['text_mask'].all()
    assert tokens[0] == SOT and tokens[-1] == EOT and (tokens[1:-1] != EOT).all()


def test_errors_and_pickle():
    tok = CLIPTokenize()
    with pytest.raises(KeyError, match='query'):
        tok(dict(text='x'))
    with pytest.raises(TypeError, match='str'):
        tok(dict(query=['a', 'b']))
    # Dataloader workers may receive the transform pickled.
    clone = pickle.loads(pickle.dumps(tok))
    np.testing.assert_array_equal(clone(dict(query='hi'))['text_tokens'],
                                  tok(dict(query='hi'))['text_tokens'])
    assert 'CLIPTokenize' in repr(tok)
