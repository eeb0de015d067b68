"""Batched entropic partial OT against POT's reference implementation."""
import math

import numpy as np
import ot
import pytest
import torch

from mmvpeft.ops.partial_ot import entropic_partial_wasserstein


def _pot(a, b, cost, reg, mass, num_iters):
    """POT's plan for one unbatched problem (float64 numpy in, torch out)."""
    plan = ot.partial.entropic_partial_wasserstein(
        a.double().numpy(), b.double().numpy(), cost.double().numpy(), reg,
        m=float(mass), numItermax=num_iters)
    return torch.from_numpy(np.asarray(plan))


def _random_problem(bsz=4, n=7, m=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    cost = torch.rand(bsz, n, m, generator=g, dtype=dtype) * 2
    # Unnormalised weights with different totals per side and sample.
    a = torch.rand(bsz, n, generator=g, dtype=dtype) + 0.1
    b = torch.rand(bsz, m, generator=g, dtype=dtype) + 0.1
    a = a / a.sum(1, keepdim=True) * torch.tensor([1.0, 0.7, 1.3, 1.0], dtype=dtype)[:bsz, None]
    b = b / b.sum(1, keepdim=True) * torch.tensor([0.8, 1.0, 1.0, 2.0], dtype=dtype)[:bsz, None]
    return a, b, cost


@pytest.mark.parametrize('log_domain', [False, True])
@pytest.mark.parametrize('reg', [0.05, 0.5])
def test_matches_pot_per_sample(log_domain, reg):
    a, b, cost = _random_problem()
    cap = torch.minimum(a.sum(1), b.sum(1))
    # Per-sample mass, including nearly-binding marginals (0.95 * cap).
    mass = cap * torch.tensor([0.5, 0.95, 0.2, 0.95], dtype=torch.float64)
    plan = entropic_partial_wasserstein(a, b, cost, reg, mass, num_iters=50,
                                        log_domain=log_domain)
    assert plan.shape == cost.shape and plan.dtype == torch.float64
    for i in range(len(a)):
        ref = _pot(a[i], b[i], cost[i], reg, mass[i], 50)
        torch.testing.assert_close(plan[i], ref, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize('log_domain', [False, True])
def test_matches_pot_on_unpadded_subproblems(log_domain):
    bsz, n, m = 4, 9, 6
    _, _, cost = _random_problem(bsz, n, m, seed=1)
    n_valid = [9, 4, 1, 6]
    m_valid = [6, 6, 3, 2]
    rows = torch.arange(n)[None] < torch.tensor(n_valid)[:, None]
    cols = torch.arange(m)[None] < torch.tensor(m_valid)[:, None]
    a = rows.double() / rows.sum(1, keepdim=True)
    b = cols.double() / cols.sum(1, keepdim=True)
    valid = rows[:, :, None] & cols[:, None, :]
    # Padded costs are garbage; they must be ignored, not propagated.
    padded_cost = cost.masked_fill(~valid, math.nan)
    plan = entropic_partial_wasserstein(a, b, padded_cost, 0.1, 0.6, num_iters=60,
                                        log_domain=log_domain)
    assert torch.isfinite(plan).all()
    assert (plan[~valid] == 0).all()
    for i, (nv, mv) in enumerate(zip(n_valid, m_valid)):
        ref = _pot(a[i, :nv], b[i, :mv], cost[i, :nv, :mv], 0.1, 0.6, 60)
        torch.testing.assert_close(plan[i, :nv, :mv], ref, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize('log_domain', [False, True])
def test_marginal_inequalities_are_enforced(log_domain):
    g = torch.Generator().manual_seed(2)
    bsz, n, m = 3, 8, 6
    cost = torch.rand(bsz, n, m, generator=g, dtype=torch.float64)
    # Column 0 is far cheaper than the rest: without an active column bound
    # nearly all the mass would pile onto it.
    cost[:, :, 0] -= 5
    a = torch.full((bsz, n), 1 / n, dtype=torch.float64)
    b = torch.full((bsz, m), 1 / m, dtype=torch.float64)
    mass = 0.8
    plan = entropic_partial_wasserstein(a, b, cost, 0.05, mass, num_iters=2000,
                                        log_domain=log_domain)
    torch.testing.assert_close(plan.sum((1, 2)), torch.full((bsz, ), mass, dtype=torch.float64))
    assert (plan.sum(2) <= a + 1e-8).all()
    assert (plan.sum(1) <= b + 1e-8).all()
    # The cheap column is saturated at its bound rather than overfilled.
    torch.testing.assert_close(plan[:, :, 0].sum(1), b[:, 0], rtol=0, atol=1e-6)
    assert (plan >= 0).all()


def test_total_mass_holds_after_every_iteration_count():
    a, b, cost = _random_problem()
    for k in (1, 2, 7):
        plan = entropic_partial_wasserstein(a, b, cost, 0.3, 0.4, num_iters=k)
        torch.testing.assert_close(plan.sum((1, 2)), torch.full((4, ), 0.4, dtype=torch.float64))


def test_log_domain_agrees_with_plain_in_float32():
    a, b, cost = _random_problem(dtype=torch.float32)
    plain = entropic_partial_wasserstein(a, b, cost, 0.2, 0.5, num_iters=100, log_domain=False)
    logd = entropic_partial_wasserstein(a, b, cost, 0.2, 0.5, num_iters=100, log_domain=True)
    assert logd.dtype == torch.float32
    torch.testing.assert_close(logd, plain, rtol=1e-4, atol=1e-6)


def test_log_domain_survives_float32_underflow():
    # Balanced 2x2 problem (mass = 1) whose costs only tie: every plan costs
    # 24, so the optimum is uniform (0.25 each) although exp(-C / reg) spans
    # e^0 .. e^-240. Reaching it needs scalings of ~e^120, far outside float32.
    cost = torch.tensor([[[0., 12.], [12., 24.]]], dtype=torch.float64)
    a = torch.full((1, 2), 0.5, dtype=torch.float64)
    kw = dict(reg=0.1, mass=1.0, num_iters=500)
    ref = _pot(a[0], a[0], cost[0], kw['reg'], kw['mass'], kw['num_iters'])[None]
    torch.testing.assert_close(ref, torch.full_like(ref, 0.25))

    a32, c32 = a.float(), cost.float()
    with pytest.warns(RuntimeWarning) as record:
        plain = entropic_partial_wasserstein(a32, a32, c32, log_domain=False, **kw)
    messages = ' | '.join(str(w.message) for w in record)
    assert 'underflowed' in messages and 'overflowed' in messages
    assert not torch.isfinite(plain).all()
    logd = entropic_partial_wasserstein(a32, a32, c32, log_domain=True, **kw)
    assert logd.dtype == torch.float32 and torch.isfinite(logd).all()
    torch.testing.assert_close(logd.double(), ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize('log_domain', [False, True])
def test_stop_thr_checks_every_ten_iterations(log_domain):
    a, b, cost = _random_problem()
    kw = dict(reg=0.3, mass=0.5, log_domain=log_domain)

    def run(k, **extra):
        return entropic_partial_wasserstein(a, b, cost, num_iters=k, **extra, **kw)

    # The first check is after iteration 0, as in POT.
    assert torch.equal(run(1000, stop_thr=math.inf), run(1))
    thr = 1e-9
    stopped = run(1000, stop_thr=thr)
    # The stop happens at the first checked iteration 10j whose change is <= thr.
    for j in range(100):
        k = 10 * j + 1
        change = (run(k) - run(k - 1)).abs().max().item() if k > 1 else math.inf
        if change <= thr:
            break
    assert 1 < k < 1000
    assert torch.equal(stopped, run(k))
    # Default (None) never stops early.
    assert torch.equal(run(k + 10), run(k + 10, stop_thr=None))
    assert not torch.equal(run(k + 10), stopped)


def test_batch_elements_are_independent():
    a, b, cost = _random_problem()
    full = entropic_partial_wasserstein(a, b, cost, 0.2, 0.5, num_iters=30)
    for i in range(4):
        one = entropic_partial_wasserstein(a[i:i + 1], b[i:i + 1], cost[i:i + 1], 0.2, 0.5,
                                           num_iters=30)
        torch.testing.assert_close(one[0], full[i], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize('kwargs, err, match', [
    (dict(a=torch.ones(2, 4) / 4), ValueError, r'a must have shape'),
    (dict(b=torch.ones(3, 4) / 4), ValueError, r'b must have shape'),
    (dict(cost=torch.rand(3, 5)), ValueError, r'cost must be a \(B, N, M\)'),
    (dict(cost=torch.randint(0, 3, (3, 5, 3))), TypeError, r'floating point'),
    (dict(a=torch.tensor([[.5, .5, .1, -.1, 0.]] * 3)), ValueError, r'non-negative'),
    (dict(b=torch.tensor([[1., math.nan, 0.]] * 3)), ValueError, r'finite'),
    (dict(mass=1.5), ValueError, r'infeasible.*sample 0'),
    (dict(mass=torch.tensor([0.5, 0.5, 1.01])), ValueError, r'infeasible.*sample 2'),
    (dict(mass=torch.tensor([0.5, 0.5])), ValueError, r'mass must be a float or a \(B,\)'),
    (dict(mass=0.0), ValueError, r'mass must be finite and > 0'),
    (dict(reg=0.0), ValueError, r'reg must be'),
    (dict(reg=math.inf), ValueError, r'reg must be'),
    (dict(num_iters=0), ValueError, r'num_iters'),
    (dict(stop_thr=-1.0), ValueError, r'stop_thr'),
])
def test_bad_inputs_raise(kwargs, err, match):
    args = dict(a=torch.ones(3, 5) / 5, b=torch.ones(3, 3) / 3, cost=torch.rand(3, 5, 3),
                reg=0.1, mass=0.5)
    args.update(kwargs)
    with pytest.raises(err, match=match):
        entropic_partial_wasserstein(**args)


def test_non_finite_cost_only_rejected_on_valid_entries():
    a = torch.tensor([[0.5, 0.5, 0.0]])
    b = torch.tensor([[1.0, 0.0]])
    cost = torch.rand(1, 3, 2)
    cost[0, 2, :] = math.inf  # padded row: ignored
    cost[0, :, 1] = math.nan  # padded column: ignored
    plan = entropic_partial_wasserstein(a, b, cost, 0.1, 1.0, num_iters=20)
    assert torch.isfinite(plan).all()
    cost[0, 1, 0] = math.inf
    with pytest.raises(ValueError, match='cost must be finite'):
        entropic_partial_wasserstein(a, b, cost, 0.1, 1.0)


def test_tol_stops_at_the_kkt_residual():
    # Rows and columns bind (mass 0.95 of the cap, one very cheap column), so convergence
    # takes ~1000 iterations: early stopping must wait for the marginals.
    a, b, cost = _random_problem(seed=3)
    cost[:, :, 0] -= 1.0
    mass = 0.95 * torch.minimum(a.sum(1), b.sum(1))
    tol = 1e-6
    plan, info = entropic_partial_wasserstein(a, b, cost, 0.05, mass, num_iters=5000,
                                              tol=tol, return_info=True)
    k = info['iters']
    assert 100 < k < 5000 and k % 10 == 0 and info['domain'] == 'exp'
    assert info['residual'].shape == (4, ) and (info['residual'] <= tol).all()
    for i in range(4):
        # It is POT's iterate after k iterations ...
        torch.testing.assert_close(plan[i], _pot(a[i], b[i], cost[i], 0.05, mass[i], k),
                                   rtol=1e-9, atol=1e-13)
        # ... and within ~tol (L1, relative to the mass) of POT's converged plan.
        converged = torch.from_numpy(np.asarray(ot.partial.entropic_partial_wasserstein(
            a[i].numpy(), b[i].numpy(), cost[i].numpy(), 0.05, m=float(mass[i]),
            numItermax=50000, stopThr=1e-15)))
        assert (plan[i] - converged).abs().sum() / mass[i] < 10 * tol
    # The log domain stops at the same iteration with the same plan.
    logd, linfo = entropic_partial_wasserstein(a, b, cost, 0.05, mass, num_iters=5000,
                                               tol=tol, log_domain=True, return_info=True)
    assert linfo['iters'] == k and linfo['domain'] == 'log'
    torch.testing.assert_close(logd, plan, rtol=1e-8, atol=1e-12)


def test_auto_domain_switches_on_the_cost_range():
    a, b, cost = _random_problem(dtype=torch.float32)
    _, info = entropic_partial_wasserstein(a, b, cost, 0.1, 0.5, num_iters=5, return_info=True)
    assert info['domain'] == 'exp'  # range 2 / 0.1 = 20 <= 50
    _, info = entropic_partial_wasserstein(a, b, cost * 4, 0.1, 0.5, num_iters=5,
                                           return_info=True)
    assert info['domain'] == 'log'  # range 80 > 50
    # float64 keeps the multiplicative domain up to a range of 500.
    _, info = entropic_partial_wasserstein(a.double(), b.double(), cost.double() * 4, 0.1, 0.5,
                                           num_iters=5, return_info=True)
    assert info['domain'] == 'exp'
    # The float32 underflow case of test_log_domain_survives_float32_underflow: auto is exact.
    c = torch.tensor([[[0., 12.], [12., 24.]]])
    half = torch.full((1, 2), 0.5)
    plan = entropic_partial_wasserstein(half, half, c, 0.1, 1.0, num_iters=500)
    torch.testing.assert_close(plan, torch.full_like(plan, 0.25), rtol=0, atol=1e-5)


@pytest.mark.parametrize('kwargs, match', [
    (dict(log_domain='yes'), 'log_domain'), (dict(tol=-1.0), 'tol'),
    (dict(check_every=0), 'check_every')])
def test_bad_solver_options_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        entropic_partial_wasserstein(torch.ones(1, 2) / 2, torch.ones(1, 2) / 2,
                                     torch.rand(1, 2, 2), 0.1, 0.5, **kwargs)
