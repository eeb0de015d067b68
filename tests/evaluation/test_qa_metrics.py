"""Video QA accuracy on hand cases, and the answer dump."""
import json

import pytest

from mmvpeft.evaluation.functional.qa_metrics import (majority_answer_baseline,
                                                      normalize_answer, qa_accuracy,
                                                      question_type)
from mmvpeft.evaluation.metrics import QAAccuracyMetric, QAAnswerDumper


@pytest.mark.parametrize('raw,norm', [('Man', 'man'), ('  a   Man. ', 'a man'),
                                      ('"dog"!', 'dog'), ('ｍａｎ', 'man'), ('', ''),
                                      (None, ''), ('t-shirt', 't-shirt'), ('2', '2')])
def test_normalize_answer(raw, norm):
    assert normalize_answer(raw) == norm


def test_question_type_is_the_first_word():
    assert question_type('What is a man doing?') == 'what'
    assert question_type('  who  sings?') == 'who'
    assert question_type('') == ''


def test_accuracy_hand_case_with_types_and_oov():
    # 6 questions: 4 right (case and punctuation do not matter), "unicycle" is outside the
    # vocabulary, so no prediction can match it, and it still counts.
    preds = ['man', 'Dog', 'cook', 'red', 'car', 'kitchen.']
    answers = ['man', 'dog', 'sing', 'red', 'unicycle', 'kitchen']
    types = ['who', 'what', 'what', 'what', 'what', 'where']
    out = qa_accuracy(preds, answers, types)
    assert out['acc'] == pytest.approx(100 * 4 / 6)
    assert out['acc/who'] == 100.0 and out['acc/where'] == 100.0
    assert out['acc/what'] == pytest.approx(100 * 2 / 4)
    assert list(out) == ['acc', 'acc/what', 'acc/where', 'acc/who']
    with pytest.raises(ValueError, match='2 predictions, 3 answers'):
        qa_accuracy(['a', 'b'], ['a', 'b', 'c'])
    with pytest.raises(ValueError, match='no question'):
        qa_accuracy([], [])


def test_majority_baseline_hand_case():
    train = ['man', 'man', 'dog', 'dog', 'red']      # tie man/dog -> 'dog' (alphabetical)
    test = ['dog', 'man', 'red', 'dog']
    out = majority_answer_baseline(train, test, ['who', 'who', 'what', 'what', 'color'],
                                   ['what', 'who', 'color', 'how'])
    assert out['answer'] == 'dog' and out['acc'] == 50.0
    # per type: what->dog (right), who->man (right), color->red (right), how unseen->dog
    assert out['prior_acc'] == 100.0


def test_metric_types_dedup_and_in_vocab():
    metric = QAAccuracyMetric()
    metric.process(None, [
        dict(qid=1, pred_answer='man', answer='man', question='who is singing?',
             answer_label=3),
        dict(qid=2, pred_answer='car', answer='unicycle', question='What is he riding?',
             answer_label=-1),
        dict(qid=3, pred_answer='red', answer='red', question_type='color', answer_label=0)])
    # The distributed sampler pads with repeats: qid 1 again (with another prediction).
    metric.process(None, [dict(qid=1, pred_answer='dog', answer='man', question='who?',
                               answer_label=3)])
    out = metric.compute_metrics(metric.results)
    assert out['acc'] == pytest.approx(200 / 3)
    assert out['acc/who'] == 100.0 and out['acc/what'] == 0.0 and out['acc/color'] == 100.0
    assert out['in_vocab'] == pytest.approx(200 / 3)
    with pytest.raises(KeyError, match='pred_answer'):
        metric.process(None, [dict(qid=9, answer='a')])
    with pytest.raises(TypeError, match='qid=9'):
        metric.process(None, [dict(qid=9, answer='a', pred_answer=3)])


def test_answer_dumper_writes_json_lines(tmp_path):
    out_file = tmp_path / 'sub' / 'answers.jsonl'
    dumper = QAAnswerDumper(out_file=str(out_file))
    dumper.process(None, [dict(qid=7, vid='video7010', question='what is it?',
                               pred_answer='dog', answer='cat', topk_answers=['dog', 'cat'],
                               topk_scores=[0.612345, 0.3])])
    dumper.process(None, [dict(qid=8, vid='video7011', question='who?', pred_answer='man',
                               answer='man')])
    assert dumper.compute_metrics(dumper.results) == {}
    lines = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert lines == [dict(qid=7, vid='video7010', question='what is it?', pred_answer='dog',
                          answer='cat', topk_answers=['dog', 'cat'], topk_scores=[0.6123, 0.3]),
                     dict(qid=8, vid='video7011', question='who?', pred_answer='man',
                          answer='man')]
    with pytest.raises(KeyError, match='question'):
        dumper.process(None, [dict(qid=1, vid='v', pred_answer='a')])
