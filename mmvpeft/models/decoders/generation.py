"""Greedy and beam-search decoding over a next-token log-probability function.

``step(tokens (N, L), rows (N,) | None) -> (N, V)`` gives the log-probabilities of the next
token after each of N prefixes; ``rows`` says which batch item (memory row) each prefix
belongs to (None: prefix i is item i). No key/value cache: every step re-runs the prefix,
which keeps PETL methods that read the whole word sequence (READ's recurrence) exact.
"""
from typing import Callable, List, Optional

import torch

StepFn = Callable[[torch.Tensor, Optional[torch.Tensor]], torch.Tensor]


def greedy_search(step: StepFn, start: torch.Tensor, eot: int, max_len: int) -> List[List[int]]:
    """Argmax decoding.

    Args:
        step: next-token log-probabilities (see the module docstring).
        start: (B, 1) start tokens.
        eot: end token; a sequence stops after it.
        max_len: most generated tokens, EOT included.

    Returns:
        list[list[int]]: B generated sequences, without the start token and EOT.
    """
    tokens = start
    done = torch.zeros(start.shape[0], dtype=torch.bool, device=start.device)
    for _ in range(max_len):
        nxt = step(tokens, None).argmax(-1)
        # Finished rows keep decoding (causal attention keeps rows independent); their
        # extra tokens are cut below.
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        done |= nxt == eot
        if bool(done.all()):
            break
    return [_strip(row[1:].tolist(), eot) for row in tokens]


def beam_search(step: StepFn, start: torch.Tensor, eot: int, max_len: int, beam_size: int,
                length_penalty: float = 0.0) -> List[List[int]]:
    """Beam search with a length penalty.

    Each item keeps ``beam_size`` live prefixes. A candidate ending in EOT becomes a finished
    hypothesis with score ``sum(log p) / length ** length_penalty`` (length counts the
    generated tokens, EOT included); an item stops once it has ``beam_size`` finished
    hypotheses, or at ``max_len``, where live beams are scored the same way. The best
    finished hypothesis wins. With ``beam_size=1`` this is greedy decoding.

    Args:
        step, start, eot, max_len: as :func:`greedy_search`.
        beam_size: live beams per item.
        length_penalty: exponent of the length normalisation (0: none).

    Returns:
        list[list[int]]: B best sequences, without the start token and EOT.
    """
    if beam_size < 1:
        raise ValueError(f'beam_size must be >= 1, got {beam_size}')
    b = start.shape[0]
    device = start.device

    def norm(score: float, length: int) -> float:
        return score / (length ** length_penalty) if length_penalty else score

    # Live beams, per item: a list of (score, tokens list); tokens include the start token.
    live = [[(0.0, start[i].tolist())] for i in range(b)]
    finished: List[List] = [[] for _ in range(b)]
    for t in range(max_len):
        active = [i for i in range(b) if live[i] and len(finished[i]) < beam_size]
        if not active:
            break
        prefixes, rows, owners = [], [], []
        for i in active:
            for score, seq in live[i]:
                prefixes.append(seq)
                rows.append(i)
                owners.append(score)
        logp = step(torch.tensor(prefixes, dtype=torch.long, device=device),
                    torch.tensor(rows, dtype=torch.long, device=device))
        total = logp + torch.tensor(owners, dtype=logp.dtype, device=device)[:, None]
        pos = 0
        for i in active:
            k = len(live[i])
            cand = total[pos:pos + k].flatten()
            vocab = total.shape[1]
            # 2k candidates are enough to find k that do not end the sequence.
            scores, idx = cand.topk(min(2 * beam_size, cand.numel()))
            new = []
            for rank, (s, j) in enumerate(zip(scores.tolist(), idx.tolist())):
                beam, token = divmod(j, vocab)
                seq = live[i][beam][1] + [token]
                if token == eot:
                    # Only an EOT among the best beam_size candidates ends a hypothesis.
                    if rank < beam_size:
                        finished[i].append((norm(s, t + 1), seq))
                else:
                    new.append((s, seq))
                if len(new) == beam_size:
                    break
            live[i] = new
            pos += k
    out = []
    for i in range(b):
        # Beams still live at max_len compete with the finished ones.
        pool = finished[i] + [(norm(s, len(seq) - 1), seq) for s, seq in live[i]
                              if len(finished[i]) < beam_size]
        best = max(pool, key=lambda h: h[0])  # the first of equal scores
        out.append(_strip(best[1][1:], eot))
    return out


def _strip(seq: List[int], eot: int) -> List[int]:
    return seq[:seq.index(eot)] if eot in seq else seq
