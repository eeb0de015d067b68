"""PackQAInputs: shapes, metadata, and errors naming the qid."""
import numpy as np
import pytest

from mmvpeft.datasets.transforms import PackQAInputs


def sample(**kw):
    s = dict(imgs=np.zeros((4, 1, 3, 8, 8), np.uint8), text_tokens=np.array([1, 5, 2]),
             text_mask=np.array([True, True, True]), qid=7, vid='video1', question='who?',
             answer='man', question_type='who', answer_label=0, video_path='x.mp4')
    s.update(kw)
    return s


def test_pack_qa_inputs():
    out = PackQAInputs()(sample())
    assert tuple(out['inputs']['imgs'].shape) == (4, 1, 3, 8, 8)
    assert out['inputs']['text_tokens'].dtype.is_floating_point is False
    assert out['data_samples'] == dict(qid=7, vid='video1', question='who?', answer='man',
                                       question_type='who', answer_label=0,
                                       video_path='x.mp4')
    assert tuple(PackQAInputs()(sample(imgs=np.zeros((4, 3, 8, 8), np.uint8)))['inputs'][
        'imgs'].shape) == (4, 1, 3, 8, 8)


def test_pack_qa_inputs_errors_name_the_qid():
    s = sample()
    del s['text_tokens']
    with pytest.raises(KeyError, match='qid=7.*CLIPTokenize'):
        PackQAInputs()(s)
    s = sample()
    del s['imgs']
    with pytest.raises(KeyError, match='no video input \\(qid=7\\)'):
        PackQAInputs()(s)
    with pytest.raises(ValueError, match=r'\(L,\).*qid=7'):
        PackQAInputs()(sample(text_tokens=np.ones((2, 3)), text_mask=np.ones((2, 3), bool)))
    with pytest.raises(ValueError, match='must include'):
        PackQAInputs(meta_keys=('qid', ))
