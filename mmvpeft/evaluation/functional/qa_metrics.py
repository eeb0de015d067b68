"""Open-ended video QA accuracy: exact match of normalised answer strings.

Normalisation (:func:`normalize_answer`), applied to predictions and ground truth alike:
Unicode NFKC, lower case, runs of whitespace collapsed to one space, and leading/trailing
whitespace and punctuation (``. , ! ? ; : ' "``) stripped. Nothing else: no article
removal and no number-word mapping (VQA v2's extra rules). MSRVTT-QA answers are single
lower-case words, so on its files this is plain exact match; the rules only keep a
generated answer such as ``"Man."`` from counting wrong for its case or full stop.
"""
import re
import unicodedata
from collections import Counter, OrderedDict
from typing import Dict, Optional, Sequence

_STRIP = ' \t\n.,!?;:\'"'


def normalize_answer(text) -> str:
    """The canonical form compared by :func:`qa_accuracy` (see the module docstring).

    Args:
        text: An answer (or question) string; ``None`` gives ``''``.

    Returns:
        str: e.g. ``'  A  Man. '`` -> ``'a man'``.
    """
    if text is None:
        return ''
    text = unicodedata.normalize('NFKC', str(text)).lower()
    return re.sub(r'\s+', ' ', text).strip(_STRIP)


def question_type(question: str) -> str:
    """The first word of the normalised question (MSRVTT-QA: what, who, how, when, where).

    Returns:
        str: ``''`` for an empty question.
    """
    words = normalize_answer(question).split(' ')
    return words[0].strip(_STRIP) if words else ''


def qa_accuracy(preds: Sequence[str], answers: Sequence[str],
                types: Optional[Sequence[str]] = None) -> Dict[str, float]:
    """Accuracy (percent) of predicted against ground-truth answers, overall and per type.

    A question whose answer lies outside the model's vocabulary simply never matches a
    prediction from that vocabulary: it stays in the denominator and counts as wrong.

    Args:
        preds: N predicted answer strings.
        answers: N ground-truth answer strings.
        types: Optional N question types; adds ``acc/{type}`` per distinct type (sorted).

    Returns:
        dict: ``acc`` and, with ``types``, ``acc/{type}``, in percent.

    Raises:
        ValueError: lengths differ or N is 0.
    """
    if len(preds) != len(answers) or (types is not None and len(types) != len(answers)):
        raise ValueError(f'qa_accuracy: {len(preds)} predictions, {len(answers)} answers'
                         + ('' if types is None else f', {len(types)} types'))
    if not answers:
        raise ValueError('qa_accuracy: no question to score')
    hits = [normalize_answer(p) == normalize_answer(a) for p, a in zip(preds, answers)]
    out = OrderedDict(acc=100.0 * sum(hits) / len(hits))
    if types is not None:
        per = {}
        for t, h in zip(types, hits):
            per.setdefault(str(t), []).append(h)
        for t in sorted(per):
            out[f'acc/{t}'] = 100.0 * sum(per[t]) / len(per[t])
    return out


def majority_answer_baseline(train_answers: Sequence[str], test_answers: Sequence[str],
                             train_types: Optional[Sequence[str]] = None,
                             test_types: Optional[Sequence[str]] = None) -> Dict[str, float]:
    """Accuracy of always answering the most frequent training answer.

    Ties go to the alphabetically first normalised answer (the vocabulary's order). With
    types, also the stronger per-type prior (``prior_acc``): the most frequent training
    answer of the question's type (a type unseen in training falls back to the overall one).

    Returns:
        dict: ``acc`` (and ``prior_acc``) in percent, and ``answer``, the majority answer.
    """
    counts = Counter(normalize_answer(a) for a in train_answers)
    if not counts:
        raise ValueError('majority_answer_baseline: no training answer')

    def top(counter):
        return min(counter.items(), key=lambda kv: (-kv[1], kv[0]))[0]

    majority = top(counts)
    out = dict(acc=qa_accuracy([majority] * len(test_answers), test_answers)['acc'],
               answer=majority)
    if train_types is not None and test_types is not None:
        per_type = {}
        for t, a in zip(train_types, train_answers):
            per_type.setdefault(t, Counter())[normalize_answer(a)] += 1
        preds = [top(per_type[t]) if t in per_type else majority for t in test_types]
        out['prior_acc'] = qa_accuracy(preds, test_answers)['acc']
    return out
