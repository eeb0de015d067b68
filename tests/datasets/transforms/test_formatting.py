"""The Pack* transforms and to_tensor: the data contract's per-item layout.

``imgs`` is ``(T, K, 3, H, W)`` per item for every task (K = 1 for sampled frames); no packer
drops or adds the K axis, and any other rank is an error naming the layout and the item.
"""
import numpy as np
import pytest
import torch

from mmvpeft.datasets.transforms import (PackCaptionInputs, PackMomentInputs, PackQAInputs,
                                         PackRetrievalInputs)
from mmvpeft.datasets.transforms.formatting import to_tensor


def qa_sample(**kw):
    s = dict(imgs=np.zeros((4, 1, 3, 8, 8), np.uint8), text_tokens=np.array([1, 5, 2]),
             text_mask=np.array([True, True, True]), qid=7, vid='video1', question='who?',
             answer='man', question_type='who', answer_label=0, video_path='x.mp4')
    s.update(kw)
    return s


def retrieval_sample(**kw):
    s = dict(imgs=torch.zeros((4, 1, 3, 8, 8), dtype=torch.uint8), vid='v1',
             captions=['a', 'b'], caption_ids=['v1#0', 'v1#1'],
             text_tokens=np.array([[1, 5, 2], [1, 2, 0]]),
             text_mask=np.array([[True] * 3, [True, True, False]]), video_index=3)
    s.update(kw)
    return s


def moment_sample(**kw):
    s = dict(imgs=torch.zeros((5, 2, 3, 8, 8), dtype=torch.uint8), qid=3, vid='m1',
             query='a man', duration=10.0, gt_windows=[[0., 2.]], clip_len_eff=2.0,
             text_tokens=np.array([1, 5, 2]), text_mask=np.array([True] * 3))
    s.update(kw)
    return s


def test_to_tensor():
    a = np.arange(6, dtype=np.int64).reshape(2, 3)[:, ::2]  # not contiguous
    t = to_tensor(a)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.int64 and t.is_contiguous()
    np.testing.assert_array_equal(t.numpy(), a)
    x = torch.ones(2)
    assert to_tensor(x) is x
    assert to_tensor([1, 2]).tolist() == [1, 2] and to_tensor(3.0).item() == 3.0
    with pytest.raises(TypeError, match='str'):
        to_tensor('abc')


@pytest.mark.parametrize('pack,sample,ident', [
    (PackQAInputs(), qa_sample, 'qid=7'),
    (PackRetrievalInputs(), retrieval_sample, "vid='v1'"),
    (PackCaptionInputs(), retrieval_sample, "vid='v1'"),
    (PackMomentInputs(), moment_sample, 'qid=3'),
])
def test_every_packer_keeps_the_k_axis_and_rejects_other_ranks(pack, sample, ident):
    item = sample()
    shape = tuple(item['imgs'].shape)
    out = pack(item)
    assert tuple(out['inputs']['imgs'].shape) == shape and out['inputs']['imgs'].ndim == 5
    assert out['inputs']['imgs'].dtype == torch.uint8
    flat = torch.as_tensor(np.asarray(item['imgs']))[:, 0]  # (T, 3, H, W): K dropped
    with pytest.raises(ValueError, match=r'\(T, K, 3, H, W\).*' + ident + '.*FormatVideo'):
        pack(sample(imgs=flat))


def test_pack_qa_inputs():
    out = PackQAInputs()(qa_sample())
    assert tuple(out['inputs']['imgs'].shape) == (4, 1, 3, 8, 8)
    assert out['inputs']['text_tokens'].dtype == torch.int64
    assert out['data_samples'] == dict(qid=7, vid='video1', question='who?', answer='man',
                                       question_type='who', answer_label=0,
                                       video_path='x.mp4')
    ctx = PackQAInputs()(qa_sample(context_tokens=np.array([1, 4, 2]),
                                   context_mask=np.ones(3, bool)))['inputs']
    assert ctx['context_tokens'].shape == (1, 3) and ctx['context_mask'].dtype == torch.bool


def test_pack_qa_inputs_errors_name_the_qid():
    s = qa_sample()
    del s['text_tokens']
    with pytest.raises(KeyError, match='qid=7.*CLIPTokenize'):
        PackQAInputs()(s)
    s = qa_sample()
    del s['imgs']
    with pytest.raises(KeyError, match='no video input \\(qid=7\\)'):
        PackQAInputs()(s)
    with pytest.raises(ValueError, match=r'\(L,\).*qid=7'):
        PackQAInputs()(qa_sample(text_tokens=np.ones((2, 3)), text_mask=np.ones((2, 3), bool)))
    with pytest.raises(ValueError, match='must include'):
        PackQAInputs(meta_keys=('qid', ))
    s = qa_sample()
    del s['answer']
    with pytest.raises(KeyError, match='missing "answer"'):
        PackQAInputs()(s)


def test_pack_retrieval_inputs():
    out = PackRetrievalInputs()(retrieval_sample())
    inp = out['inputs']
    assert inp['text_tokens'].dtype == torch.int64 and inp['text_mask'].dtype == torch.bool
    assert inp['text_tokens'].shape == (2, 3)
    assert out['data_samples'] == dict(vid='v1', video_index=3, captions=['a', 'b'],
                                       caption_ids=['v1#0', 'v1#1'])
    s = retrieval_sample(video_feat=np.ones((4, 6), np.float32))
    del s['imgs']
    assert PackRetrievalInputs()(s)['inputs']['video_feat'].shape == (4, 6)
    with pytest.raises(ValueError, match=r'\(C, L\).*multi=True'):
        PackRetrievalInputs()(retrieval_sample(text_tokens=np.ones(3), text_mask=np.ones(3)))
    with pytest.raises(ValueError, match='3 caption_ids but 2'):
        PackRetrievalInputs()(retrieval_sample(caption_ids=['a', 'b', 'c']))
    with pytest.raises(ValueError, match='must include'):
        PackRetrievalInputs(meta_keys=('vid', ))


def test_pack_caption_inputs_adds_the_context():
    out = PackCaptionInputs()(retrieval_sample(
        transcript='long text', context_tokens=np.full((2, 4), 7),
        context_mask=np.ones((2, 4), bool)))
    assert out['inputs']['context_tokens'].shape == (2, 4)
    assert out['inputs']['context_tokens'].dtype == torch.int64
    assert out['data_samples']['transcript'] == 'long text'
    assert 'context_tokens' not in PackRetrievalInputs()(retrieval_sample(
        context_tokens=np.full((2, 4), 7), context_mask=np.ones((2, 4), bool)))['inputs']


def test_pack_moment_inputs():
    out = PackMomentInputs()(moment_sample())
    assert out['data_samples']['clip_len'] == 2.0 and out['data_samples']['num_clips'] == 5
    assert out['data_samples']['gt_windows'] == [[0., 2.]]
    feat = moment_sample(video_feat=np.ones((6, 4), np.float32))
    del feat['imgs']
    assert PackMomentInputs()(feat)['inputs']['video_feat'].shape == (6, 4)
    s = moment_sample()
    del s['text_tokens'], s['text_mask']
    with pytest.raises(KeyError, match='no text input'):
        PackMomentInputs()(s)
