"""Captioning and summarization scores: the coco-caption toolkit (``pycocoevalcap``), wrapped.

BLEU-1..4, METEOR, ROUGE-L and CIDEr(-D) are computed by ``pycocoevalcap``'s own scorers on
captions tokenized by its ``PTBTokenizer`` (Stanford CoreNLP, Java). Without Java the
tokenizer falls back to :func:`simple_ptb_tokenize` (the same output on ordinary captions;
tested against the Java tokenizer) and METEOR (Java too) is skipped with one warning.
ROUGE-1/2/L F1 for summarization (:func:`rouge_n_f1`, :func:`rouge_l_f1`) follow Lin
(2004) with F1 (beta = 1), as the summarization literature reports them; coco-caption's
ROUGE_L uses beta = 1.2.

Scores are x100.
"""
import re
import shutil
import warnings
from collections import Counter
from typing import Dict, List, Mapping, Sequence

# pycocoevalcap's PTBTokenizer drops these tokens after tokenizing.
PUNCTUATIONS = ("''", "'", '``', '`', '-LRB-', '-RRB-', '-LCB-', '-RCB-', '.', '?', '!', ',',
                ':', '-', '--', '...', ';')
COCO_METRICS = ('BLEU', 'METEOR', 'ROUGE_L', 'CIDEr')
#: The one install line that enables METEOR (pycocoevalcap runs meteor-1.5.jar with Java).
JAVA_INSTALL = 'apt-get install -y default-jre-headless  (or: conda install -c conda-forge openjdk)'
_warned = set()


def java_available() -> bool:
    return shutil.which('java') is not None


def skipped_metrics(metrics: Sequence[str] = COCO_METRICS) -> Dict[str, str]:
    """The requested coco-caption metrics this machine cannot compute, with the reason.

    Args:
        metrics: requested scorers (``'BLEU'``, ``'METEOR'``, ``'ROUGE_L'``, ``'CIDEr'``).

    Returns:
        ``{metric: why it is skipped and how to enable it}``; empty when all can run.
    """
    skipped = {}
    if 'METEOR' in metrics and not java_available():
        skipped['METEOR'] = ('Java not found (pycocoevalcap runs METEOR as meteor-1.5.jar); '
                             f'install a Java runtime: {JAVA_INSTALL}')
    return skipped


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, stacklevel=3)


_BRACKETS = {'(': '-lrb-', ')': '-rrb-', '{': '-lcb-', '}': '-rcb-', '[': '-lsb-', ']': '-rsb-'}


def simple_ptb_tokenize(text: str) -> str:
    """Pure-Python stand-in for ``PTBTokenizer`` (``-lowerCase``, punctuation removed).

    Splits Penn-Treebank style: clitics (``do n't``, ``it 's``, ``they 're``), brackets as
    ``-lrb-``..., punctuation off words (keeping ``5:30``, ``2.5``, ``p.m.``, ``well-known``);
    then drops :data:`PUNCTUATIONS` as pycocoevalcap does.
    """
    text = text.lower().replace('\n', ' ')
    text = re.sub(r'"', ' ', text)
    text = re.sub(r'([(){}\[\]])', lambda m: f' {_BRACKETS[m.group(1)]} ', text)
    text = re.sub(r'\.\.\.+', ' ... ', text)
    text = re.sub(r'--+', ' -- ', text)
    text = re.sub(r'([,;!?&$%#@*+=/<>|~^])', r' \1 ', text)
    text = re.sub(r'(?<!\d):|:(?!\d)', ' : ', text)
    tokens = []
    for tok in text.split():
        tokens.extend(_split_word(tok))
    # As in pycocoevalcap: its list names -LRB- etc. in upper case, so -lrb- stays.
    return ' '.join(t for t in tokens if t not in PUNCTUATIONS)


def _split_word(tok: str) -> List[str]:
    if tok.startswith('-') and tok.endswith('-') and len(tok) > 2 and tok[1:-1].isalpha():
        return [tok]  # -lrb- and friends
    lead = []
    while tok[:1] in ("'", '`') and len(tok) > 1:
        lead.append(tok[0])
        tok = tok[1:]
    trail = []
    while tok and tok[-1] in ".'`":
        if tok[-1] == '.' and _keeps_period(tok):
            break
        trail.insert(0, tok[-1])
        tok = tok[:-1]
    parts = []
    if tok:
        m = re.match(r"^(.*\w)(n't)$", tok)
        if m:
            parts = [m.group(1), m.group(2)]
        else:
            m = re.match(r"^(.*\w)('(?:s|re|ve|ll|d|m))$", tok)
            parts = [m.group(1), m.group(2)] if m else [tok]
    return lead + parts + trail


def _keeps_period(tok: str) -> bool:
    """Abbreviations keep their final period (``p.m.``, ``u.s.``)."""
    return bool(re.fullmatch(r'(?:[a-z]\.){2,}', tok))


def tokenize(captions: Mapping[str, Sequence[str]], backend: str = 'auto'
             ) -> Dict[str, List[str]]:
    """``{id: [caption, ...]}`` -> the same, PTB-tokenized and lower-cased.

    Args:
        captions: texts per id.
        backend: ``'ptb'`` (pycocoevalcap's Java tokenizer), ``'simple'``
            (:func:`simple_ptb_tokenize`) or ``'auto'`` (Java when it is installed).
    """
    if backend not in ('auto', 'ptb', 'simple'):
        raise ValueError(f"tokenizer backend must be 'auto', 'ptb' or 'simple', got {backend!r}")
    if backend == 'auto':
        backend = 'ptb' if java_available() else 'simple'
        if backend == 'simple':
            _warn_once('tokenizer', 'Java not found: captions are tokenized by '
                       'simple_ptb_tokenize instead of the Stanford PTBTokenizer')
    if backend == 'simple':
        return {k: [simple_ptb_tokenize(c) for c in v] for k, v in captions.items()}
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    return PTBTokenizer().tokenize({k: [{'caption': c} for c in v]
                                    for k, v in captions.items()})


def coco_caption_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]],
                        metrics: Sequence[str] = COCO_METRICS, tokenizer: str = 'auto',
                        ) -> Dict[str, float]:
    """pycocoevalcap scores of one prediction per id against its references.

    Args:
        predictions: ``{id: text}``.
        references: ``{id: [text, ...]}``, the same ids.
        metrics: any of ``'BLEU'`` (Bleu_1..Bleu_4), ``'METEOR'``, ``'ROUGE_L'``, ``'CIDEr'``.
        tokenizer: see :func:`tokenize`.

    Returns:
        dict: score name -> value x100. METEOR is missing (one warning) without Java.

    Raises:
        KeyError: an id without references or without a prediction (named).
        ValueError: an id with an empty reference list.
    """
    _check_ids(predictions, references)
    for k, refs in references.items():
        if not refs:
            raise ValueError(f'id {k!r} has an empty reference list')
    unknown = [m for m in metrics if m not in COCO_METRICS]
    if unknown:
        raise ValueError(f'unknown caption metrics {unknown}; choose from {COCO_METRICS}')
    if not predictions:
        return {}
    ids = sorted(predictions, key=str)
    gts = tokenize({k: list(references[k]) for k in ids}, tokenizer)
    res = tokenize({k: [predictions[k]] for k in ids}, tokenizer)
    out = {}
    if 'BLEU' in metrics:
        from pycocoevalcap.bleu.bleu import Bleu
        scores, _ = Bleu(4).compute_score(gts, res, verbose=0)
        out.update({f'Bleu_{n + 1}': 100 * s for n, s in enumerate(scores)})
    if 'METEOR' in metrics:
        if java_available():
            from pycocoevalcap.meteor.meteor import Meteor
            meteor = Meteor()
            out['METEOR'] = 100 * meteor.compute_score(gts, res)[0]
            del meteor  # its __del__ stops the Java process
        else:
            _warn_once('meteor', 'Java not found: METEOR skipped (BLEU, ROUGE_L, CIDEr '
                       f'reported); to enable it: {JAVA_INSTALL}')
    if 'ROUGE_L' in metrics:
        from pycocoevalcap.rouge.rouge import Rouge
        out['ROUGE_L'] = 100 * Rouge().compute_score(gts, res)[0]
    if 'CIDEr' in metrics:
        from pycocoevalcap.cider.cider import Cider
        out['CIDEr'] = 100 * Cider().compute_score(gts, res)[0]
    return out


def _check_ids(predictions: Mapping, references: Mapping) -> None:
    no_refs = sorted(set(predictions) - set(references), key=str)
    no_pred = sorted(set(references) - set(predictions), key=str)
    if no_refs or no_pred:
        raise KeyError(f'ids without references: {no_refs[:5]}; ids without a prediction: '
                       f'{no_pred[:5]}')


# ---- ROUGE-N / ROUGE-L F1 (summarization) --------------------------------------------------
def _f1(overlap: float, n_cand: int, n_ref: int) -> float:
    if overlap == 0 or n_cand == 0 or n_ref == 0:
        return 0.0
    p, r = overlap / n_cand, overlap / n_ref
    return 2 * p * r / (p + r)


def rouge_n_f1(candidate: Sequence[str], reference: Sequence[str], n: int) -> float:
    """ROUGE-N F1 of two token lists: clipped n-gram overlap."""
    cand = Counter(tuple(candidate[i:i + n]) for i in range(len(candidate) - n + 1))
    ref = Counter(tuple(reference[i:i + n]) for i in range(len(reference) - n + 1))
    return _f1(sum((cand & ref).values()), sum(cand.values()), sum(ref.values()))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l_f1(candidate: Sequence[str], reference: Sequence[str]) -> float:
    """Sentence-level ROUGE-L F1: longest common subsequence over both lengths."""
    return _f1(lcs_length(candidate, reference), len(candidate), len(reference))


def rouge_f1_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]],
                    tokenizer: str = 'auto') -> Dict[str, float]:
    """Mean ROUGE-1/2/L F1 (x100) over ids; with several references, the best one counts.

    Texts are tokenized as for :func:`coco_caption_scores` (lower-cased, punctuation
    dropped).
    """
    _check_ids(predictions, references)
    if not predictions:
        return {}
    ids = sorted(predictions, key=str)
    gts = tokenize({k: list(references[k]) for k in ids}, tokenizer)
    res = tokenize({k: [predictions[k]] for k in ids}, tokenizer)
    sums = Counter()
    for k in ids:
        cand = res[k][0].split()
        refs = [r.split() for r in gts[k]]
        sums['ROUGE-1'] += max(rouge_n_f1(cand, r, 1) for r in refs)
        sums['ROUGE-2'] += max(rouge_n_f1(cand, r, 2) for r in refs)
        sums['ROUGE-L-F1'] += max(rouge_l_f1(cand, r) for r in refs)
    return {k: 100 * v / len(ids) for k, v in sums.items()}
