"""Greedy and beam-search decoding over a next-token log-probability function.

``step(tokens (N, L), rows (N,) | None) -> (N, V)`` gives the log-probabilities of the next
token after each of N prefixes; ``rows`` says which batch item (memory row) each prefix
belongs to (None: prefix i is item i).

A step may keep state between calls (a key/value cache: it then only reads the newest
tokens of each prefix). Such a step has a ``reorder(parents)`` method: before every call
after the first, beam search passes ``parents`` (N,) int64, the position in the previous
call's batch of the prefix each new prefix extends, so the step can gather its state.
Greedy decoding keeps row i as row i (finished rows go on decoding), so it never reorders.
A step without ``reorder`` is called with whole prefixes and is stateless.
"""
from typing import Callable, List, Optional, Tuple, Union

import torch

StepFn = Callable[[torch.Tensor, Optional[torch.Tensor]], torch.Tensor]


def _forbid_eot(logp: torch.Tensor, eot: int, generated: int, min_len: int) -> torch.Tensor:
    """``logp`` (N, V) with EOT impossible while fewer than ``min_len`` words (tokens other
    than EOT) were generated (a new tensor then; ``logp`` is left as it is)."""
    if generated >= min_len:
        return logp
    return logp.index_fill(1, torch.tensor([eot], device=logp.device), float('-inf'))


def greedy_search(step: StepFn, start: torch.Tensor, eot: int, max_len: int,
                  min_len: int = 0, return_scores: bool = False
                  ) -> Union[List[List[int]], Tuple[List[List[int]], List[float]]]:
    """Argmax decoding.

    Args:
        step: next-token log-probabilities (see the module docstring).
        start: (B, 1) start tokens.
        eot: end token; a sequence stops after it.
        max_len: most generated tokens, EOT included.
        min_len: EOT is not allowed before this many words were generated (0: any
            time); ``min_len=max_len`` gives exactly ``max_len`` words.
        return_scores: also return each sequence's sum of log-probabilities (its tokens
            and EOT, if generated).

    Returns:
        list[list[int]]: B generated sequences, without the start token and EOT; with
        ``return_scores``, a tuple (sequences, scores (list of B floats)).
    """
    b, n0 = start.shape
    # Room for every token; step t reads the first n0 + t columns (a view, no copy).
    tokens = start.new_empty(b, n0 + max_len)
    tokens[:, :n0] = start
    done = torch.zeros(b, dtype=torch.bool, device=start.device)
    picked = []  # per step: (B,) log p of the chosen token
    steps = max_len
    for t in range(max_len):
        logp = _forbid_eot(step(tokens[:, :n0 + t], None), eot, t, min_len)
        best, nxt = logp.max(-1)  # the first of equal maxima, as argmax
        picked.append(best)
        tokens[:, n0 + t] = nxt
        # Finished rows keep decoding (causal attention keeps rows independent); their
        # extra tokens are cut below, and their scores stop growing. While EOT is
        # forbidden no row can finish, so there is nothing to check.
        if t >= min_len:
            done |= nxt == eot
            if bool(done.all()):
                steps = t + 1
                break
    generated = tokens[:, n0:n0 + steps]
    seqs = [_strip(row, eot) for row in generated.tolist()]
    if not return_scores:
        return seqs
    # A row's tokens after its first EOT add nothing to its score.
    is_eot = (generated == eot).int()
    after_eot = (is_eot.cumsum(1) - is_eot).bool()
    scores = torch.stack(picked, 1).double().masked_fill(after_eot, 0.0)
    return seqs, scores.sum(1).tolist()


def beam_search(step: StepFn, start: torch.Tensor, eot: int, max_len: int, beam_size: int,
                length_penalty: float = 0.0, min_len: int = 0, return_scores: bool = False
                ) -> Union[List[List[int]], Tuple[List[List[int]], List[float]]]:
    """Beam search with a length penalty.

    Each item keeps ``beam_size`` live prefixes; the live prefixes of all unfinished items
    go through ``step`` as one batch. A candidate ending in EOT becomes a finished
    hypothesis with score ``sum(log p) / length ** length_penalty`` (length counts the
    generated tokens, EOT included); an item stops once it has ``beam_size`` finished
    hypotheses, or at ``max_len``, where live beams are scored the same way. The best
    finished hypothesis wins. With ``beam_size=1`` this is greedy decoding.

    Args:
        step, start, eot, max_len: as :func:`greedy_search`.
        beam_size: live beams per item.
        length_penalty: exponent of the length normalisation (0: none).
        min_len: EOT is not allowed before this many words were generated (0: any
            time); ``min_len=max_len`` gives exactly ``max_len`` words.
        return_scores: also return the winning hypotheses' (normalised) scores.

    Returns:
        list[list[int]]: B best sequences, without the start token and EOT; with
        ``return_scores``, a tuple (sequences, scores (list of B floats)).
    """
    if beam_size < 1:
        raise ValueError(f'beam_size must be >= 1, got {beam_size}')
    b = start.shape[0]
    device = start.device

    def norm(score: float, length: int) -> float:
        return score / (length ** length_penalty) if length_penalty else score

    # Live beams, per item: a list of (score, tokens list); tokens include the start token.
    live = [[(0.0, start[i].tolist())] for i in range(b)]
    # parent[i][j]: position of live[i][j]'s parent in the previous step's batch.
    parent: List[List[int]] = [[i] for i in range(b)]
    finished: List[List] = [[] for _ in range(b)]
    reorder = getattr(step, 'reorder', None)
    for t in range(max_len):
        active = [i for i in range(b) if live[i] and len(finished[i]) < beam_size]
        if not active:
            break
        prefixes, rows, owners, parents = [], [], [], []
        for i in active:
            for (score, seq), par in zip(live[i], parent[i]):
                prefixes.append(seq)
                rows.append(i)
                owners.append(score)
                parents.append(par)
        if reorder is not None and t > 0:
            reorder(torch.tensor(parents, dtype=torch.long, device=device))
        logp = _forbid_eot(step(torch.tensor(prefixes, dtype=torch.long, device=device),
                                torch.tensor(rows, dtype=torch.long, device=device)),
                           eot, t, min_len)
        total = logp + torch.tensor(owners, dtype=logp.dtype, device=device)[:, None]
        # One top-k for all items: item a's beams fill rows a * kmax + j of a padded
        # (A * kmax, V) table (-inf where an item has fewer beams), seen as (A, kmax * V).
        counts = [len(live[i]) for i in active]
        kmax, vocab = max(counts), total.shape[1]
        slots = torch.tensor([a * kmax + j for a, c in enumerate(counts) for j in range(c)],
                             dtype=torch.long, device=device)
        table = total.new_full((len(active) * kmax, vocab), float('-inf'))
        table[slots] = total
        top_s, top_i = table.view(len(active), kmax * vocab).topk(
            min(2 * beam_size, kmax * vocab), dim=1)
        # 2k candidates are enough to find k that do not end the sequence.
        top_s, top_i = top_s.tolist(), top_i.tolist()
        pos = 0
        for a, i in enumerate(active):
            k = counts[a]
            scores, idx = top_s[a], top_i[a]
            new, new_parent = [], []
            for rank, (s, j) in enumerate(zip(scores, idx)):
                beam, token = divmod(j, vocab)
                if beam >= k:  # padding of an item with fewer beams
                    continue
                seq = live[i][beam][1] + [token]
                if token == eot:
                    # Only an EOT among the best beam_size candidates ends a hypothesis.
                    if rank < beam_size:
                        finished[i].append((norm(s, t + 1), seq))
                else:
                    new.append((s, seq))
                    new_parent.append(pos + beam)
                if len(new) == beam_size:
                    break
            live[i], parent[i] = new, new_parent
            pos += k
    out, best_scores = [], []
    for i in range(b):
        # Beams still live at max_len compete with the finished ones.
        pool = finished[i] + [(norm(s, len(seq) - 1), seq) for s, seq in live[i]
                              if len(finished[i]) < beam_size]
        best = max(pool, key=lambda h: h[0])  # the first of equal scores
        out.append(_strip(best[1][1:], eot))
        best_scores.append(float(best[0]))
    return (out, best_scores) if return_scores else out


def _strip(seq: List[int], eot: int) -> List[int]:
    return seq[:seq.index(eot)] if eot in seq else seq
