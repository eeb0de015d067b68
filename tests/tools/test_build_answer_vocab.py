"""tools/build_answer_vocab.py makes the QA vocabulary file once; the model reads that file
(its size must be model.num_answers) and the dataset finds it made."""
import json

import pytest
from mmengine.registry import init_default_scope

from mmvpeft.registry import MODELS

TINY = dict(embed_dim=32,
            vision_cfg=dict(image_size=32, patch_size=16, width=32, layers=1, head_width=16),
            text_cfg=dict(context_length=16, width=32, heads=2, layers=1))


def test_tool_writes_the_vocabulary_the_model_and_dataset_share(tmp_path, load_tool, capsys):
    ann = tmp_path / 'train_qa.json'
    answers = ['Dog', 'man', 'dog', 'cook', 'man', 'dog.']
    ann.write_text(json.dumps([dict(id=i, video_id=0, question='who?', answer=a)
                               for i, a in enumerate(answers)]))
    out = tmp_path / 'vocab.json'
    assert load_tool('build_answer_vocab').main([str(ann), str(out), '--top-k', '2']) == 0
    data = json.loads(out.read_text())
    assert data['answers'] == ['dog', 'man'] and data['counts'] == [3, 2]  # normalised
    assert f'wrote {out}: 2 answers' in capsys.readouterr().out
    init_default_scope('mmvpeft')
    model = MODELS.build(dict(
        type='VideoQA', video_backbone=dict(type='CLIPVisionBackbone', model_cfg=TINY),
        text_backbone=dict(type='CLIPTextBackbone', model_cfg=TINY), num_answers=2,
        answer_vocab=dict(file='vocab.json', data_root=str(tmp_path)),
        fusion=dict(dim=32, num_heads=2, num_fusion_layers=1)))
    assert model.answers == ['dog', 'man']
    assert bytes(model.head.vocab_digest.tolist()).hex() == data['sha256']
    # The dataset's builder finds the file made and checks it against the same source.
    from mmvpeft.datasets.qa import build_answer_vocab
    vocab = build_answer_vocab(source=str(ann), top_k=2, file=str(out))
    assert vocab.digest == bytes(model.head.vocab_digest.tolist())
    # Rerunning keeps the file; another top_k is an error, not a silent rebuild.
    assert load_tool('build_answer_vocab').main([str(ann), str(out), '--top-k', '2']) == 0
    assert f'kept {out}' in capsys.readouterr().out
    with pytest.raises(ValueError, match='top_k=2, the config asks for 3'):
        load_tool('build_answer_vocab').main([str(ann), str(out), '--top-k', '3'])
    assert load_tool('build_answer_vocab').main([str(tmp_path / 'nope.json'), str(out)]) == 2
    assert 'annotation file not found' in capsys.readouterr().err
