"""Beam search's length penalty points the right way: a positive exponent divides the
(negative) log-probability by length ** penalty, which favours longer hypotheses; 0 keeps
the raw sum (the short one wins here)."""
import math

import torch

from mmvpeft.models.decoders.generation import beam_search

START, EOT, A, B = 0, 1, 2, 3


def _step(prefixes, rows):
    """Log-probabilities over 4 tokens. From the start: EOT -1.2, A -0.3, B -1.0. After
    three A's: EOT -0.6. Elsewhere EOT is unlikely (-5), A -0.3, B -1.0. So the short
    hypothesis [EOT] scores -1.2 and [A, A, A, EOT] -1.5."""
    out = []
    for seq in prefixes.tolist():
        if seq == [START]:
            lp = {EOT: -1.2, A: -0.3, B: -1.0}
        elif seq == [START, A, A, A]:
            lp = {EOT: -0.6, A: -5.0, B: -5.0}
        else:
            lp = {EOT: -5.0, A: -0.3, B: -1.0}
        out.append([lp.get(t, -20.0) for t in range(4)])
    return torch.tensor(out, dtype=torch.float64)


def _decode(length_penalty):
    start = torch.tensor([[START]])
    return beam_search(_step, start, EOT, max_len=4, beam_size=3,
                       length_penalty=length_penalty)[0]


def test_no_penalty_prefers_the_higher_total_log_probability():
    assert _decode(0.0) == []  # [EOT]: -1.2 > -1.5


def test_positive_penalty_prefers_longer_hypotheses():
    # -1.2 / 1 ** 1 = -1.2 < -1.5 / 4 ** 1 = -0.375: the long hypothesis wins
    assert _decode(1.0) == [A, A, A]
    # the crossing point: -1.2 == -1.5 / 4 ** p at p = log(1.25) / log(4) ~ 0.16
    crossing = math.log(1.5 / 1.2) / math.log(4)
    assert _decode(crossing - 0.05) == []
    assert _decode(crossing + 0.05) == [A, A, A]
