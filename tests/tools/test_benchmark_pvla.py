"""tools/benchmark_pvla.py runs and reports the PVLA default's distance to POT and to the
converged plan (figures only; timings are never asserted)."""


def test_pvla_default_row_is_converged_and_equals_pot(load_tool, capsys):
    bench = load_tool('benchmark_pvla')
    for scale in (1.0, 8.0):  # raw cost range ~1.5 and ~100: the default does not care
        r = bench.run_benchmark(batch=2, nv=12, nl=6, dim=8, iters=100, repeat=1, scale=scale)
        assert r['pvla_l1_to_converged'] <= 1e-2
        assert r['pvla_l1_to_pot'] <= 1e-5
        assert 1 <= r['pvla_iters'] <= 100 and r['ours_pvla_ms_median'] > 0
    bench.main(['--batch', '2', '--nv', '12', '--nl', '6', '--dim', '8', '--repeat', '1'])
    assert 'pvla default' in capsys.readouterr().out
