"""CLIPTokenize(multi=True): a list of captions -> (C, L) tokens and masks."""
import numpy as np
import open_clip
import pytest

from mmvpeft.datasets.transforms.tokenize import CLIPTokenize

EOT = 49407


def test_list_of_captions_matches_open_clip_per_row():
    caps = ['a dog runs', 'a red circle moves to the right quickly', 'hi']
    out = CLIPTokenize(key='captions', multi=True)(dict(captions=caps))
    ref = open_clip.tokenize(caps).numpy()
    assert out['text_tokens'].shape == (3, 77) and out['text_tokens'].dtype == np.int64
    np.testing.assert_array_equal(out['text_tokens'], ref)
    lengths = (ref != 0).sum(1)
    np.testing.assert_array_equal(out['text_mask'], np.arange(77)[None] < lengths[:, None])


def test_trim_to_longest_caption():
    caps = ['a dog runs', 'a red circle moves to the right quickly']
    full = CLIPTokenize(key='captions', multi=True)(dict(captions=caps))
    out = CLIPTokenize(key='captions', multi=True, trim_padding=True)(dict(captions=tuple(caps)))
    lengths = full['text_mask'].sum(1)
    assert out['text_tokens'].shape == (2, lengths.max()) == out['text_mask'].shape
    np.testing.assert_array_equal(out['text_tokens'], full['text_tokens'][:, :lengths.max()])
    np.testing.assert_array_equal(out['text_mask'].sum(1), lengths)
    assert out['text_tokens'][0, lengths[0] - 1] == EOT and out['text_tokens'][1, -1] == EOT
    assert out['captions'] == tuple(caps)  # input left in place


def test_single_query_unchanged_by_the_new_options():
    a = CLIPTokenize(trim_padding=True)(dict(query='a dog runs'))
    b = CLIPTokenize(key='captions', multi=True, trim_padding=True)(dict(captions=['a dog runs']))
    assert a['text_tokens'].shape == (5, )
    np.testing.assert_array_equal(b['text_tokens'], a['text_tokens'][None])
    np.testing.assert_array_equal(b['text_mask'], a['text_mask'][None])


@pytest.mark.parametrize('value,match', [
    ('one string', 'non-empty list'),
    ([], 'empty list'),
    (['ok', 3], 'holding a int'),
])
def test_multi_errors_name_the_sample(value, match):
    with pytest.raises(TypeError, match=match) as info:
        CLIPTokenize(key='captions', multi=True)(dict(captions=value, vid='v7'))
    assert "vid='v7'" in str(info.value)
    with pytest.raises(KeyError, match='captions'):
        CLIPTokenize(key='captions', multi=True)(dict(query='x'))
    assert 'multi=True' in repr(CLIPTokenize(key='captions', multi=True))
