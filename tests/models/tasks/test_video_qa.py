"""VideoQA: labels from its own vocabulary, the loss, predictions, padding, checkpoints."""
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
               answer_vocab=dict(answers=answers),
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


def test_loss_is_cross_entropy_over_in_vocabulary_answers_only():
    model = build().eval()
    inputs = batch()
    samples = [dict(qid=0, answer='Blue'), dict(qid=1, answer='unicycle'),
               dict(qid=2, answer='left')]
    logits = model(inputs, mode='tensor')['logits']
    assert logits.shape == (3, len(ANSWERS))
    loss = model(inputs, samples, mode='loss')
    assert set(loss) == {'loss_answer'} and model.loss_keys == ('loss_answer', )
    # The out-of-vocabulary question is ignored, not counted as class 0.
    expected = F.cross_entropy(logits[[0, 2]], torch.tensor([1, 4]))
    torch.testing.assert_close(loss['loss_answer'], expected)
    none = model(inputs, [dict(qid=i, answer='unicycle') for i in range(3)], mode='loss')
    assert none['loss_answer'].item() == 0.0 and none['loss_answer'].requires_grad


def test_one_step_trains_exactly_the_mixing_block_fusion_and_head():
    model = build().train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(('video_backbone.visual.transformer.resblocks.1.',
                                           'fusion.', 'head.')) for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    total, _ = model.parse_losses(model(batch(), [dict(answer=a) for a in ANSWERS[:3]], 'loss'))
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
