"""AnswerClassifierHead: masked cross-entropy and the vocabulary guard on loading."""
import hashlib

import pytest
import torch
import torch.nn.functional as F

from mmvpeft.models.heads import AnswerClassifierHead


def digest(answers):
    return hashlib.sha256('\n'.join(answers).encode()).digest()


def test_loss_ignores_out_of_vocabulary_labels_and_smooths():
    torch.manual_seed(0)
    head = AnswerClassifierHead(in_dim=8, num_answers=4, hidden_dim=6, label_smoothing=0.1)
    logits = head(torch.randn(5, 8))
    assert logits.shape == (5, 4)
    labels = torch.tensor([2, -1, 0, 3, -1])
    keep = labels >= 0
    torch.testing.assert_close(head.loss(logits, labels),
                               F.cross_entropy(logits[keep], labels[keep], label_smoothing=0.1))
    assert head.loss(logits, torch.full((5, ), -1)).item() == 0.0


def test_weights_of_another_vocabulary_are_refused():
    head = AnswerClassifierHead(8, 3, vocab_digest=digest(['a', 'b', 'c']))
    state = head.state_dict()
    assert bytes(state['vocab_digest'].tolist()) == digest(['a', 'b', 'c'])
    AnswerClassifierHead(8, 3, vocab_digest=digest(['a', 'b', 'c'])).load_state_dict(state)
    with pytest.raises(ValueError, match='another answer vocabulary'):
        AnswerClassifierHead(8, 3, vocab_digest=digest(['c', 'b', 'a'])).load_state_dict(state)
    with pytest.raises(ValueError, match='num_answers'):
        AnswerClassifierHead(8, 0)
