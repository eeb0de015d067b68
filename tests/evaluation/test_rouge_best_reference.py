"""Summarization ROUGE with several references scores each prediction against its best
reference (per metric), not the first one or their mean."""
import pytest

from mmvpeft.evaluation.functional.caption_metrics import rouge_f1_scores


def test_best_of_several_references():
    preds = {'a': 'the cat sat on the mat', 'b': 'a dog runs fast'}
    refs = {'a': ['a completely different sentence here',   # first reference: no overlap
                  'the cat sat on the mat'],                  # second: exact
            'b': ['a dog runs', 'dog runs fast today']}
    out = rouge_f1_scores(preds, refs, tokenizer='simple')
    # 'b': ROUGE-1 vs ref 1: 3 of 4 / 3 of 3 -> F1 6/7; vs ref 2: 3/4, 3/4 -> 0.75: best 6/7
    # ROUGE-2: ref 1 bigrams {a dog, dog runs} 2 of 3 / 2 of 2 -> 0.8; ref 2: {dog runs,
    # runs fast} 2/3, 2/3 -> 2/3: best 0.8. ROUGE-L: LCS 3 with both: 6/7 vs 0.75 -> 6/7
    assert out['ROUGE-1'] == pytest.approx(100 * (1 + 6 / 7) / 2)
    assert out['ROUGE-2'] == pytest.approx(100 * (1 + 0.8) / 2)
    assert out['ROUGE-L-F1'] == pytest.approx(100 * (1 + 6 / 7) / 2)
    # the order of the references does not matter
    swapped = {k: v[::-1] for k, v in refs.items()}
    assert rouge_f1_scores(preds, swapped, tokenizer='simple') == pytest.approx(out)
