"""Time the batched partial-OT solver against POT looped over the batch.

    python tools/benchmark_pvla.py [--batch 32] [--nv 128] [--nl 32] [--dim 32]
                                   [--iters 100] [--repeat 5] [--device cpu|cuda]
                                   [--threads 1] [--tol 1e-4]

Inputs mimic PVLA: random video/text states ``(B, Nv, r)``, ``(B, Nl, r)``
with std ``1/sqrt(r)`` (so ``0.5 * ||x - y||^2`` is O(1), the regime where
POT's multiplicative solver is still exact) and uniform weights. Each solver
runs ``iters`` iterations with no early stopping; POT gets the very same
float cost values (cast to float64 NumPy, its usual path) one sample at a
time. Reported times are per batch, in milliseconds, after one warm-up run.
Rows: ``'auto'`` (the default domain choice, what PVLA runs), the log and the
multiplicative domain forced, and ``'auto'`` with early stopping at KKT residual
``--tol`` (its row shows the iterations it needed and its distance to POT's
fixed-iteration plan), and ``'pvla default'``: what ``PVLALoss()`` runs, the cost divided
per sample by its max (scale-free) and early stopping at KKT residual 1e-6, with its
distance to POT's plan for that normalised cost and to the converged plan (ours at
20,000 iterations, tol 1e-12), as a fraction of the mass. ``--scale`` multiplies the
states (PVLA's convergence on the raw cost depends on it; on the normalised one it does
not). ``--threads`` (default 1) sets torch's intra-op threads.
On a shared or small machine prefix ``OMP_NUM_THREADS=1``: it pins both torch
and NumPy's BLAS (used by POT) to one thread, and contended OpenMP threads
otherwise make timings swing by 10x or more.

Another script can call :func:`run_benchmark` directly::

    import importlib.util
    spec = importlib.util.spec_from_file_location('bench', 'tools/benchmark_pvla.py')
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.run_benchmark(batch=8, device='cpu')
"""
import argparse
import platform
import statistics
import warnings
from typing import Optional

import numpy as np
import torch

from mmvpeft.apis.benchmarking import timed
from mmvpeft.ops.partial_ot import entropic_partial_wasserstein


def _hardware(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    name = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    return f'{name} ({torch.get_num_threads()} torch threads)'


def _timeit(fn, device: torch.device, repeat: int):
    """Run ``fn`` once to warm up, then ``repeat`` timed times; return (out, ms)."""
    out = fn()
    times = []
    for _ in range(repeat):
        seconds, out = timed(fn, device)
        times.append(seconds * 1e3)
    return out, times


def run_benchmark(batch: int = 32,
                  nv: int = 128,
                  nl: int = 32,
                  dim: int = 32,
                  iters: int = 100,
                  repeat: int = 5,
                  device: str = 'cpu',
                  eps: float = 0.1,
                  mass: float = 0.5,
                  dtype: str = 'float32',
                  seed: int = 0,
                  threads: Optional[int] = 1,
                  tol: float = 1e-4,
                  scale: float = 1.0) -> dict:
    """Benchmark the solver (log and multiplicative domains) against POT.

    Args:
        batch, nv, nl, dim (int): ``B``, ``Nv``, ``Nl`` and ``r``.
        iters (int): Iterations of every solver.
        repeat (int): Timed runs (after one warm-up run).
        device (str): Device of the batched solver (``'cpu'`` or ``'cuda'``).
        eps (float): Entropic regularisation. mass (float): Transported mass.
        dtype (str): dtype of the batched solver, ``'float32'`` or ``'float64'``.
        seed (int): Seed of the random states.
        threads (int, optional): ``torch.set_num_threads`` for the run (restored
            after); None keeps the current setting.
        tol (float): KKT tolerance of the early-stopping row.
        scale (float): Multiplier of the states (std ``scale / sqrt(r)``).

    Returns:
        dict: Setup (``device``, ``hardware``, versions, sizes), per-solver
        ``*_ms_median`` / ``*_ms_min`` for ``ours_auto``, ``ours_log``,
        ``ours_exp``, ``ours_tol`` and ``pot_loop``, ``auto_domain``,
        ``tol_iters``, ``ours_pvla_*`` (PVLALoss's default solve: normalised cost,
        tol 1e-6), ``pvla_iters``, ``pvla_l1_to_pot`` / ``pvla_l1_to_converged`` (summed
        absolute plan difference over the mass, worst sample), speedups over POT (medians), ``max_abs_diff_*`` of each
        of our plans from POT's, and any solver ``warnings``.
    """
    import ot  # optional at import time: only the benchmark needs POT

    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run(ot, batch, nv, nl, dim, iters, repeat, device, eps, mass, dtype, seed, tol,
                    scale)
    finally:
        torch.set_num_threads(old_threads)


def _run(ot, batch, nv, nl, dim, iters, repeat, device, eps, mass, dtype, seed, tol, scale):

    dev = torch.device(device)
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError('--device cuda requested but CUDA is not available')
    tdtype = getattr(torch, dtype)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, nv, dim, generator=g) * scale / dim**0.5
    y = torch.randn(batch, nl, dim, generator=g) * scale / dim**0.5
    cost = (0.5 * torch.cdist(x.double(), y.double())**2).to(device=dev, dtype=tdtype)
    a = torch.full((batch, nv), 1 / nv, device=dev, dtype=tdtype)
    b = torch.full((batch, nl), 1 / nl, device=dev, dtype=tdtype)

    result = dict(
        device=str(dev), hardware=_hardware(dev), torch=torch.__version__,
        pot=ot.__version__, batch=batch, nv=nv, nl=nl, dim=dim, iters=iters,
        repeat=repeat, eps=eps, mass=mass, dtype=dtype, tol=tol, scale=scale,
        cost_range=float((cost.amax((1, 2)) - cost.amin((1, 2))).max()))
    plans = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        for name, log_domain, stop in (('ours_auto', 'auto', None), ('ours_log', True, None),
                                       ('ours_exp', False, None), ('ours_tol', 'auto', tol)):
            (plans[name], info), times = _timeit(
                lambda: entropic_partial_wasserstein(a, b, cost, eps, mass, num_iters=iters,
                                                     log_domain=log_domain, tol=stop,
                                                     return_info=True), dev, repeat)
            result[f'{name}_ms_median'] = statistics.median(times)
            result[f'{name}_ms_min'] = min(times)
            if name == 'ours_auto':
                result['auto_domain'] = info['domain']
            if name == 'ours_tol':
                result['tol_iters'] = info['iters']

        def pvla_default():  # PVLALoss's solve: per-sample max normalisation, tol 1e-6
            scaled = cost / cost.amax(dim=(1, 2), keepdim=True)
            return entropic_partial_wasserstein(a, b, scaled, eps, mass, num_iters=iters,
                                                tol=1e-6, return_info=True)
        (pvla_plan, pvla_info), times = _timeit(pvla_default, dev, repeat)
        result['ours_pvla_ms_median'] = statistics.median(times)
        result['ours_pvla_ms_min'] = min(times)
        result['pvla_iters'] = pvla_info['iters']
        cost_n = (cost / cost.amax(dim=(1, 2), keepdim=True)).double()
        converged = entropic_partial_wasserstein(a.double(), b.double(), cost_n, eps, mass,
                                                 num_iters=20000, tol=1e-12)
        cost_n_np = cost_n.cpu().numpy()

        cost_np = cost.double().cpu().numpy()
        a_np, b_np = a.double().cpu().numpy(), b.double().cpu().numpy()

        def pot_loop():
            return np.stack([
                ot.partial.entropic_partial_wasserstein(
                    a_np[i], b_np[i], cost_np[i], eps, m=mass, numItermax=iters)
                for i in range(batch)
            ])

        pot_plan, times = _timeit(pot_loop, torch.device('cpu'), repeat)
        pot_n = torch.from_numpy(np.stack([
            ot.partial.entropic_partial_wasserstein(a_np[i], b_np[i], cost_n_np[i], eps, m=mass,
                                                    numItermax=pvla_info['iters'])
            for i in range(batch)]))
    result['pot_loop_ms_median'] = statistics.median(times)
    result['pot_loop_ms_min'] = min(times)
    pvla_plan = pvla_plan.double().cpu()
    result['pvla_l1_to_pot'] = float((pvla_plan - pot_n).abs().sum((1, 2)).max() / mass)
    result['pvla_l1_to_converged'] = float(
        (pvla_plan - converged.cpu()).abs().sum((1, 2)).max() / mass)
    result['speedup_ours_pvla'] = result['pot_loop_ms_median'] / result['ours_pvla_ms_median']
    result['warnings'] = sorted({str(w.message) for w in caught})
    pot_plan = torch.from_numpy(pot_plan)
    for name, plan in plans.items():
        result[f'speedup_{name}'] = result['pot_loop_ms_median'] / result[f'{name}_ms_median']
        result[f'max_abs_diff_{name}'] = float((plan.double().cpu() - pot_plan).abs().max())
    result['max_plan_entry'] = float(pot_plan.max())
    return result


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Benchmark batched partial OT vs POT')
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--nv', type=int, default=128, help='video tokens')
    parser.add_argument('--nl', type=int, default=32, help='text tokens')
    parser.add_argument('--dim', type=int, default=32, help='state dimension r')
    parser.add_argument('--iters', type=int, default=100)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--eps', type=float, default=0.1)
    parser.add_argument('--mass', type=float, default=0.5)
    parser.add_argument('--dtype', choices=['float32', 'float64'], default='float32')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=1,
                        help='torch intra-op threads (default 1; 0 keeps the current)')
    parser.add_argument('--tol', type=float, default=1e-4,
                        help='KKT tolerance of the early-stopping row')
    parser.add_argument('--scale', type=float, default=1.0,
                        help='multiplier of the states (std scale / sqrt(dim))')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    kwargs = vars(args)
    kwargs['threads'] = kwargs['threads'] or None
    r = run_benchmark(**kwargs)
    print(f"device: {r['device']} | hardware: {r['hardware']}")
    print(f"torch {r['torch']}, POT {r['pot']} | B={r['batch']} Nv={r['nv']} Nl={r['nl']} "
          f"r={r['dim']} iters={r['iters']} repeat={r['repeat']} eps={r['eps']} "
          f"mass={r['mass']} dtype={r['dtype']} scale={r['scale']} | max cost range "
          f"{r['cost_range']:.3g}")
    rows = ((f"ours, auto (default: {r['auto_domain']})", 'ours_auto'),
            ('ours, log domain', 'ours_log'), ('ours, multiplicative', 'ours_exp'),
            (f"ours, auto, tol={r['tol']:g} ({r['tol_iters']} it)", 'ours_tol'),
            ('POT looped over batch', 'pot_loop'))
    print(f"{'solver':<36}{'median ms':>10}{'min ms':>10}{'vs POT':>9}{'max|dT|':>11}")
    for label, key in rows:
        speed = f"{r['speedup_' + key]:.1f}x" if key != 'pot_loop' else '1.0x'
        diff = f"{r['max_abs_diff_' + key]:.2e}" if key != 'pot_loop' else '-'
        print(f"{label:<36}{r[key + '_ms_median']:>10.2f}{r[key + '_ms_min']:>10.2f}"
              f'{speed:>9}{diff:>11}')
    print(f"{'pvla default (%d it)' % r['pvla_iters']:<36}"
          f"{r['ours_pvla_ms_median']:>10.2f}{r['ours_pvla_ms_min']:>10.2f}"
          f"{r['speedup_ours_pvla']:>8.1f}x")
    print(f"  pvla default: sum|T - T_POT| / mass = {r['pvla_l1_to_pot']:.2e} (POT on the "
          f"normalised cost, same iterations); sum|T - T_converged| / mass = "
          f"{r['pvla_l1_to_converged']:.2e}")
    print(f"(largest plan entry {r['max_plan_entry']:.3g})")
    for w in r['warnings']:
        print('warning:', w)


if __name__ == '__main__':
    main()
