"""CaptionMetric is pycocoevalcap; the Java-free tokenizer matches PTBTokenizer; ROUGE F1."""
import pytest

from mmvpeft.evaluation import CaptionMetric
from mmvpeft.evaluation.functional import caption_metrics as cm

pytest.importorskip('pycocoevalcap')
from pycocoevalcap.bleu.bleu import Bleu  # noqa: E402
from pycocoevalcap.cider.cider import Cider  # noqa: E402
from pycocoevalcap.rouge.rouge import Rouge  # noqa: E402

needs_java = pytest.mark.skipif(not cm.java_available(), reason='Java is not installed')

REFS = {
    'v1': ['A man is playing a guitar.', 'Someone plays the guitar on stage.',
           "a man's playing guitar"],
    'v2': ['Two dogs run in the park!', 'dogs are running, outside', 'two puppies play'],
    'v3': ['A woman slices a tomato (red).', 'someone is cutting vegetables',
           "the cook isn't slow: she cuts fast"],
    'v4': ['a red circle moves to the right', 'a red circle slides from left to right'],
}
PREDS = {'v1': 'a man is playing the guitar', 'v2': 'a dog runs in a park',
         'v3': 'a woman is cutting a tomato', 'v4': 'a blue square moves up'}


def run_metric(metric):
    metric.process(None, [dict(vid=k, pred_text=PREDS[k], captions=REFS[k]) for k in PREDS])
    return metric.compute_metrics(metric.results)


def direct(gts, res):
    """pycocoevalcap called directly, on already tokenized captions."""
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    out = {f'Bleu_{n + 1}': 100 * s for n, s in enumerate(bleu)}
    out['ROUGE_L'] = 100 * Rouge().compute_score(gts, res)[0]
    out['CIDEr'] = 100 * Cider().compute_score(gts, res)[0]
    return out


@needs_java
def test_caption_metric_equals_pycocoevalcap(monkeypatch):
    import pycocoevalcap.meteor.meteor as meteor_module
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{'caption': c} for c in v] for k, v in REFS.items()})
    res = tok.tokenize({k: [{'caption': v}] for k, v in PREDS.items()})
    expected = direct(gts, res)
    meteor = meteor_module.Meteor()
    expected['METEOR'] = 100 * meteor.compute_score(gts, res)[0]
    # One METEOR Java process for both (starting one costs ~20 s on 2 loaded cores).
    monkeypatch.setattr(meteor_module, 'Meteor', lambda: meteor)
    got = run_metric(CaptionMetric())
    assert got == pytest.approx(expected, abs=1e-9)
    assert set(got) == {'Bleu_1', 'Bleu_2', 'Bleu_3', 'Bleu_4', 'METEOR', 'ROUGE_L', 'CIDEr'}
    assert 0 < got['CIDEr'] and got['Bleu_4'] < got['Bleu_1']


def test_without_java_meteor_is_skipped_with_one_warning(monkeypatch):
    monkeypatch.setattr(cm, 'java_available', lambda: False)
    monkeypatch.setattr(cm, '_warned', set())
    with pytest.warns(UserWarning) as record:
        got = run_metric(CaptionMetric())
        run_metric(CaptionMetric())  # warned once only
    messages = [str(w.message) for w in record]
    assert sum('METEOR skipped' in m for m in messages) == 1
    assert 'METEOR' not in got
    gts = {k: [cm.simple_ptb_tokenize(c) for c in v] for k, v in REFS.items()}
    res = {k: [cm.simple_ptb_tokenize(v)] for k, v in PREDS.items()}
    assert got == pytest.approx(direct(gts, res), abs=1e-9)


CAPTIONS = [
    'A man is playing a guitar.', "Two dogs don't run; they're sleeping!",
    "The woman's hat (red) is well-known...", 'a cat, a dog and a bird -- all together',
    'He said "hello" to me.', "it's 5:30 p.m. now", "A child's toy isn't here?",
    "cats' tails", "I can't go", "u.s. army's tank", 'Cooking 2.5 cups of rice & beans',
    "a man's $5 bill", 'people are dancing...at night', "Let's go", "she'll do it, won't she?",
    'someone is slicing a tomato: fast', "'quoted' words here", "a girl, who's 10, sings.",
]


@needs_java
def test_simple_tokenizer_matches_ptbtokenizer():
    java = cm.tokenize({i: [c] for i, c in enumerate(CAPTIONS)}, 'ptb')
    for i, c in enumerate(CAPTIONS):
        assert cm.simple_ptb_tokenize(c) == java[i][0], c


def test_simple_tokenizer_hand_cases():
    assert cm.simple_ptb_tokenize("Two dogs don't run; they're here!") == \
        "two dogs do n't run they 're here"
    assert cm.simple_ptb_tokenize('A hat (red).') == 'a hat -lrb- red -rrb-'


def test_rouge_hand_cases():
    c = 'the cat sat on the mat'.split()
    r = 'the cat lay on the red mat'.split()
    # unigrams: the x2, cat, on, mat = 5 of 6 (cand) / 7 (ref)
    assert cm.rouge_n_f1(c, r, 1) == pytest.approx(2 * (5 / 6) * (5 / 7) / (5 / 6 + 5 / 7))
    # bigrams: "the cat", "on the" = 2 of 5 / 6
    assert cm.rouge_n_f1(c, r, 2) == pytest.approx(2 * (2 / 5) * (2 / 6) / (2 / 5 + 2 / 6))
    # LCS: the cat on the mat = 5
    assert cm.rouge_l_f1(c, r) == pytest.approx(2 * (5 / 6) * (5 / 7) / (5 / 6 + 5 / 7))
    assert cm.rouge_n_f1(['a'], ['b'], 1) == 0.0
    assert cm.rouge_l_f1([], ['b']) == 0.0
    assert cm.rouge_n_f1('a a a'.split(), 'a'.split(), 1) == pytest.approx(2 * (1 / 3) / (4 / 3))


def test_rouge_matches_rouge_score():
    rouge_score = pytest.importorskip('rouge_score.rouge_scorer')
    scorer = rouge_score.RougeScorer(['rouge1', 'rouge2', 'rougeL'])
    pairs = [('a man is playing the guitar on a stage', 'a man plays a guitar on the stage'),
             ('the red circle moves to the right side', 'a red circle moves right'),
             ('how to cut an onion with a sharp knife', 'learn how to cut onions safely'),
             ('one two three four five', 'five four three two one')]
    for cand, ref in pairs:
        want = scorer.score(ref, cand)
        c, r = cand.split(), ref.split()
        assert cm.rouge_n_f1(c, r, 1) == pytest.approx(want['rouge1'].fmeasure)
        assert cm.rouge_n_f1(c, r, 2) == pytest.approx(want['rouge2'].fmeasure)
        assert cm.rouge_l_f1(c, r) == pytest.approx(want['rougeL'].fmeasure)


def test_summary_metric_reports_rouge_f1(monkeypatch):
    monkeypatch.setattr(cm, 'java_available', lambda: False)
    metric = CaptionMetric(scorers=('BLEU', 'CIDEr'), rouge_f1=True)
    metric.process(None, [dict(vid='a', pred_text='the cat sat on the mat',
                               captions='the cat lay on the red mat.')])
    got = metric.compute_metrics(metric.results)
    assert got['ROUGE-1'] == pytest.approx(100 * 2 * (5 / 6) * (5 / 7) / (5 / 6 + 5 / 7))
    assert {'Bleu_4', 'CIDEr', 'ROUGE-2', 'ROUGE-L-F1'} <= set(got)


def test_bad_input_is_named():
    with pytest.raises(KeyError, match="'v9'"):
        cm.coco_caption_scores({'v9': 'x'}, {'v1': ['y']}, tokenizer='simple')
    metric = CaptionMetric()
    with pytest.raises(KeyError, match='pred_text.*vid=.*v1'):
        metric.process(None, [dict(vid='v1', captions=['a'])])


def test_metric_prints_what_was_skipped_and_why(monkeypatch):
    import mmvpeft.evaluation.metrics.caption_metric as metric_module
    printed = []
    monkeypatch.setattr(metric_module, 'print_log', lambda msg, **kw: printed.append(msg))
    monkeypatch.setattr(cm, 'java_available', lambda: False)
    monkeypatch.setattr(cm, '_warned', {'meteor'})  # the once-only warning already given
    for _ in range(2):  # printed at every evaluation, not once per process
        metric = CaptionMetric()
        got = run_metric(metric)
        assert 'METEOR' not in got
        assert set(metric.skipped) == {'METEOR'}
        assert 'Java not found' in metric.skipped['METEOR']
        assert 'apt-get install' in metric.skipped['METEOR']
    assert len(printed) == 2 and all('METEOR skipped: Java not found' in m for m in printed)
    printed.clear()
    metric = CaptionMetric(scorers=('BLEU', 'CIDEr'))  # METEOR not requested: nothing skipped
    run_metric(metric)
    assert metric.skipped == {} and printed == []
    monkeypatch.setattr(cm, 'java_available', lambda: True)
    assert cm.skipped_metrics() == {}
