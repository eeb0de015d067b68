"""VideoQA: builds from its config alone (num_answers, a vocabulary file read once), labels
from the samples, the loss, predictions, padding, checkpoints."""
import json
import warnings

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope

from mmvpeft.registry import MODELS

TINY = dict(embed_dim=32,
            vision_cfg=dict(image_size=32, patch_size=16, width=32, layers=2, head_width=16),
            text_cfg=dict(context_length=16, width=32, heads=2, layers=1))
ANSWERS = ['red', 'blue', 'circle', 'square', 'left']


def build(answers=ANSWERS, **kw):
    init_default_scope('mmvpeft')
    torch.manual_seed(0)
    cfg = dict(type='VideoQA',
               video_backbone=dict(type='CLIPVisionBackbone', model_cfg=TINY,
                                   peft=[dict(type='TokenMixing', layers=(-1, ))]),
               text_backbone=dict(type='CLIPTextBackbone', model_cfg=TINY),
               answer_vocab=None if answers is None else dict(answers=answers),
               fusion=dict(dim=32, num_heads=2, num_fusion_layers=1, dropout=0.0),
               head=dict(hidden_dim=32, dropout=0.0), topk=3)
    cfg.update(kw)
    return MODELS.build(cfg)


def batch(b=3, t=4, length=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(imgs=torch.randint(0, 256, (b, t, 1, 3, 32, 32), generator=g, dtype=torch.uint8),
                video_mask=torch.ones(b, t, dtype=torch.bool),
                text_tokens=torch.randint(1, 1000, (b, length), generator=g),
                text_mask=torch.ones(b, length, dtype=torch.bool))


def sample(qid, answer, answers=ANSWERS, **kw):
    """A training sample as the dataset packs it: the normalised answer and its label."""
    return dict(qid=qid, answer=answer,
                answer_label=answers.index(answer) if answer in answers else -1, **kw)


def test_loss_is_cross_entropy_over_in_vocabulary_answers_only():
    model = build().eval()
    inputs = batch()
    samples = [sample(0, 'blue'), sample(1, 'unicycle'), sample(2, 'left')]
    logits = model(inputs, mode='tensor')['logits']
    assert logits.shape == (3, len(ANSWERS))
    loss = model(inputs, samples, mode='loss')
    assert set(loss) == {'loss_answer'} and model.loss_keys == ('loss_answer', )
    # The out-of-vocabulary question is ignored, not counted as class 0.
    expected = F.cross_entropy(logits[[0, 2]], torch.tensor([1, 4]))
    torch.testing.assert_close(loss['loss_answer'], expected)
    none = model(inputs, [sample(i, 'unicycle') for i in range(3)], mode='loss')
    assert none['loss_answer'].item() == 0.0 and none['loss_answer'].requires_grad


def test_one_step_trains_exactly_the_mixing_block_fusion_and_head():
    model = build().train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(('video_backbone.visual.transformer.resblocks.1.',
                                           'fusion.', 'head.')) for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    total, _ = model.parse_losses(model(batch(), [sample(i, a) for i, a in
                                                    enumerate(ANSWERS[:3])], 'loss'))
    total.backward()
    opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed <= trainable  # frozen weights stay bit-identical
    assert all(p.grad is not None for n, p in model.named_parameters() if n in trainable)
    assert any(n.startswith('video_backbone.') for n in changed)  # the mixing block learns


def test_predict_gives_the_top_answers_as_strings():
    model = build().eval()
    inputs = batch()
    samples = [dict(qid=i, answer='red', question='what?') for i in range(3)]
    logits = model(inputs, mode='tensor')['logits']
    preds = model(inputs, samples, mode='predict')
    for i, p in enumerate(preds):
        top = logits[i].softmax(-1).topk(3)
        assert p['pred_answer'] == ANSWERS[int(logits[i].argmax())] == p['topk_answers'][0]
        assert p['topk_answers'] == [ANSWERS[j] for j in top.indices.tolist()]
        torch.testing.assert_close(torch.tensor(p['topk_scores']), top.values)
        assert p['qid'] == i and p['answer'] == 'red'


def test_a_padded_question_and_video_equal_the_sample_alone():
    model = build().eval()
    full = batch(b=2, t=4, length=6, seed=1)
    alone = dict(imgs=full['imgs'][:1, :3], video_mask=full['video_mask'][:1, :3],
                 text_tokens=full['text_tokens'][:1, :4], text_mask=full['text_mask'][:1, :4])
    padded = dict(full)
    padded['video_mask'] = full['video_mask'].clone()
    padded['video_mask'][0, 3:] = False
    padded['text_mask'] = full['text_mask'].clone()
    padded['text_mask'][0, 4:] = False
    torch.testing.assert_close(model(padded)['logits'][0], model(alone)['logits'][0],
                               atol=1e-5, rtol=1e-5)


def test_dataset_labels_from_another_vocabulary_are_refused():
    model = build()
    with pytest.raises(ValueError, match="qid=4: the dataset labels answer 'red' as 2"):
        model(batch(b=1), [dict(qid=4, answer='red', answer_label=2)], mode='loss')


def test_checkpoint_of_another_vocabulary_is_refused(tmp_path):
    state = build().state_dict()
    assert 'head.vocab_digest' in state
    assert not any(k.startswith('text_backbone.') for k in state)  # trainable-only
    build().load_state_dict(state)
    other = build(answers=list(reversed(ANSWERS)))
    with pytest.raises(ValueError, match='another answer vocabulary'):
        other.load_state_dict(state)


def test_a_sample_without_its_label_names_the_missing_key():
    with pytest.raises(KeyError, match='answer_label.*qid=7.*answer_vocab'):
        build()(batch(b=1), [dict(qid=7, answer='red')], mode='loss')


def test_builds_from_num_answers_alone_and_trains_from_sample_labels():
    """No vocabulary at all: the head has num_answers outputs, labels are the samples'; only
    naming predictions needs the answer strings."""
    model = build(answers=None, num_answers=7)
    assert model.head.num_answers == 7 and not model.head.vocab_digest.any()
    logits = model(batch(b=2), mode='tensor')['logits']
    loss = model(batch(b=2), [dict(qid=0, answer='x', answer_label=6),
                              dict(qid=1, answer='y', answer_label=-1)], mode='loss')
    torch.testing.assert_close(loss['loss_answer'],
                               F.cross_entropy(logits[:1], torch.tensor([6])))
    with pytest.raises(ValueError, match='answer_label 7 outside'):
        model(batch(b=1), [dict(qid=0, answer='x', answer_label=7)], mode='loss')
    with pytest.raises(RuntimeError, match='no answer strings'):
        model(batch(b=1), [dict(qid=0, answer='x')], mode='predict')
    with pytest.raises(ValueError, match='needs num_answers'):
        build(answers=None)


def write_vocab(path, answers, **extra):
    from mmvpeft.datasets.qa import AnswerVocab
    AnswerVocab(answers, meta=dict(top_k=len(answers), **extra)).save(str(path))


def test_vocabulary_file_is_read_at_build_when_it_exists(tmp_path):
    write_vocab(tmp_path / 'vocab.json', ANSWERS)
    model = build(answers=None, num_answers=len(ANSWERS),
                  answer_vocab=dict(file='vocab.json', data_root=str(tmp_path)))
    assert model.answers == ANSWERS
    assert bytes(model.head.vocab_digest.tolist()) == build().head.vocab_digest.numpy().tobytes()
    with pytest.raises(ValueError, match='num_answers=4 but the answer vocabulary has 5'):
        build(answers=None, num_answers=4,
              answer_vocab=dict(file='vocab.json', data_root=str(tmp_path)))


def test_vocabulary_file_written_after_build_is_read_once_on_first_use(tmp_path):
    """The runner builds the model before the dataset writes the file."""
    vocab = tmp_path / 'vocab.json'
    model = build(answers=None, num_answers=len(ANSWERS), answer_vocab=dict(file=str(vocab)))
    assert model.answers is None and not model.head.vocab_digest.any()
    write_vocab(vocab, ANSWERS)
    preds = model.eval()(batch(b=1), [dict(qid=0, answer='red')], mode='predict')
    assert preds[0]['pred_answer'] in ANSWERS and model.answers == ANSWERS
    torch.testing.assert_close(model.head.vocab_digest, build().head.vocab_digest)
    vocab.unlink()  # read once: the model no longer needs the file
    model(batch(b=1), [dict(qid=0, answer='red')], mode='predict')
    # A file of another size than the head is an error naming both.
    other = build(answers=None, num_answers=3, answer_vocab=dict(file=str(vocab)))
    write_vocab(vocab, ANSWERS)
    with pytest.raises(ValueError, match='has 5 answers, the model.s head 3'):
        other(batch(b=1), [sample(0, 'red')], mode='loss')


def test_vocabulary_file_whose_answers_do_not_match_its_digest_is_refused(tmp_path):
    vocab = tmp_path / 'vocab.json'
    write_vocab(vocab, ANSWERS)
    data = json.loads(vocab.read_text())
    data['answers'][0] = 'pink'
    vocab.write_text(json.dumps(data))
    with pytest.raises(ValueError, match='vocab.json: the answers do not match'):
        build(answers=None, answer_vocab=dict(file=str(vocab)))


def test_old_config_with_source_and_top_k_builds_without_reading_annotations(tmp_path):
    """Configs written before num_answers: the head has top_k outputs and the annotation
    file (here missing) is never read."""
    old = dict(source='train_qa.json', top_k=6, file='vocab.json', data_root=str(tmp_path))
    with pytest.warns(DeprecationWarning, match='num_answers=6'):
        model = build(answers=None, answer_vocab=old)
    assert model.head.num_answers == 6
    write_vocab(tmp_path / 'vocab.json', ANSWERS + ['up'])  # as the dataset writes it
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        model = build(answers=None, answer_vocab=old)  # now read from the file
    assert model.answers == ANSWERS + ['up']


def test_old_checkpoint_state_keys_load_into_a_model_built_from_num_answers():
    state = build().state_dict()
    model = build(answers=None, num_answers=len(ANSWERS))
    model.load_state_dict(state)  # no vocabulary yet: takes the checkpoint's digest
    torch.testing.assert_close(model.head.vocab_digest, build().head.vocab_digest)
