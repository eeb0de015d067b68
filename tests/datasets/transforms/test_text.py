"""Text transforms: CLIPTokenize (one query, or C captions with multi=True) and
CLIPTokenizeChunks (a long text in chunks that fit the text tower)."""
import pickle

import numpy as np
import open_clip
import pytest

from mmvpeft.datasets.transforms.text import CLIPTokenize, CLIPTokenizeChunks
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


def test_chunks_cut_a_long_text_and_keep_order():
    tok = open_clip.get_tokenizer('ViT-B-32')
    text = ' '.join(f'word{i}' for i in range(40))
    ids = tok.encode(text)
    out = CLIPTokenizeChunks(key='transcript', context_length=10)(dict(transcript=text))
    tokens, mask = out['context_tokens'], out['context_mask']
    # Each chunk holds context_length - 2 text tokens between its SOT and EOT.
    assert tokens.shape == (-(-len(ids) // 8), 10) and tokens.dtype == np.int64
    assert mask.dtype == np.bool_ and mask.shape == tokens.shape
    assert [t for row, m in zip(tokens, mask) for t in row[m][1:-1].tolist()] == ids
    assert all(row[m][0] == SOT and row[m][-1] == EOT for row, m in zip(tokens, mask))
    assert not tokens[~mask].any()  # padding is zeros
    capped = CLIPTokenizeChunks(key='transcript', context_length=10, max_chunks=2)(
        dict(transcript=text))['context_tokens']
    np.testing.assert_array_equal(capped, tokens[:2])


def test_chunks_short_question_is_one_chunk_and_errors():
    out = CLIPTokenizeChunks(key='question')(dict(question='who runs?'))
    assert out['context_tokens'].shape[0] == 1 and out['context_mask'].all()
    assert TRANSFORMS.get('CLIPTokenizeChunks') is CLIPTokenizeChunks
    with pytest.raises(ValueError, match='context_length'):
        CLIPTokenizeChunks(context_length=2)
    with pytest.raises(KeyError, match='question.*v3'):
        CLIPTokenizeChunks(key='question')(dict(question='  ', vid='v3'))
    assert "key='question'" in repr(CLIPTokenizeChunks(key='question'))


def test_texts_cut_at_the_context_warn_once_per_dataset_with_count_and_longest(tmp_path):
    import json
    import re
    import warnings

    from mmvpeft.datasets.grounding import MomentRetrievalDataset
    from mmvpeft.datasets.transforms.text import check_text_lengths
    long = 'a man in a red coat walks his dog along the river at night in the rain'
    records = [dict(qid=i, vid='v', query=q, duration=10.0, relevant_windows=[[1, 2]])
               for i, q in enumerate(['a dog runs', long, long + ' again', 'a cat'])]
    ann = tmp_path / 'ann.jsonl'
    ann.write_text(''.join(json.dumps(r) + '\n' for r in records))
    n_long = len(open_clip.get_tokenizer('ViT-B-32').encode(long + ' again')) + 2
    pipeline = [CLIPTokenize(context_length=16)]
    with pytest.warns(UserWarning) as rec:
        MomentRetrievalDataset(ann_file=str(ann), pipeline=pipeline)
    msgs = [str(r.message) for r in rec if 'are cut' in str(r.message)]
    assert len(msgs) == 1
    assert re.match(re.escape(f'{ann}: 2 of 4 text(s) in "query" are longer than the 16 '
                              'tokens'), msgs[0])
    assert f'the longest is {n_long} tokens' in msgs[0] and 'context_length=16' in msgs[0]
    # A context that holds every text: quiet.
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        MomentRetrievalDataset(ann_file=str(ann), pipeline=[CLIPTokenize()])
    # Caption lists and chunked texts with max_chunks are counted too.
    items = [dict(captions=['short one', long]), dict(transcript=long * 3)]
    with pytest.warns(UserWarning) as rec:
        out = check_text_lengths(items, [CLIPTokenize(key='captions', multi=True,
                                                      context_length=8),
                                         CLIPTokenizeChunks(context_length=8, max_chunks=2)],
                                 'x.jsonl')
    assert len(out) == 2 and '1 of 2 text(s) in "captions"' in out[0]
    assert '1 of 1 text(s) in "transcript"' in out[1] and 'max_chunks=2' in out[1]


def test_token_counter_equals_encode():
    from mmvpeft.datasets.transforms.text import token_counter
    tok = open_clip.get_tokenizer('ViT-B-32')
    count = token_counter(tok)
    texts = ['A man opens the fridge.', '  two   spaces\tand a tab', 'Tom &amp; Jerry',
             'café crème brûlée', 'pneumonoultramicroscopicsilicovolcanoconiosis!!',
             "it's 10:30, isn't it?", 'UPPER lower MiXeD', 'x', '',
             'emoji \U0001F600 here', 'line\nbreak']
    assert [count(t) for t in texts] == [len(tok.encode(t)) for t in texts]
