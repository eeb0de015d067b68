"""tools/benchmark_long_video.py: ``--only`` runs one kind, and the frame part reports how
much the saliency depends on the query (figures only; timings are never asserted)."""
import re


def test_only_runs_the_named_kind(load_tool, tmp_path, monkeypatch):
    bench = load_tool('benchmark_long_video')
    calls = []
    monkeypatch.setattr(bench, '_train', lambda cfg, wd, ep: calls.append(('train', cfg)) or
                        f'{wd}/adapter_latest.safetensors')
    monkeypatch.setattr(bench, '_features', lambda a, ad: calls.append(('features', ad)))
    monkeypatch.setattr(bench, '_frames', lambda a, ad: calls.append(('frames', ad)))
    monkeypatch.setattr(bench, '_memory', lambda a: calls.append(('memory', )))
    bench.main(['--work-dir', str(tmp_path), '--only', 'frames', '--frame-config', 'x.py'])
    frame_adapter = f'{tmp_path}/frames/adapter_latest.safetensors'
    assert calls == [('train', 'x.py'), ('frames', frame_adapter)]
    calls.clear()
    bench.main(['--work-dir', str(tmp_path), '--only', 'features', '--skip-train'])
    assert calls == [('features', f'{tmp_path}/features/adapter_latest.safetensors')]
    calls.clear()
    bench.main(['--work-dir', str(tmp_path), '--skip-train'])
    assert [c[0] for c in calls] == ['features', 'frames', 'memory']


def test_frame_part_reports_query_sensitivity(load_tool, tmp_path, capsys):
    bench = load_tool('benchmark_long_video')
    args = bench.parse_args(['--work-dir', str(tmp_path), '--videos', '1'])
    bench._frames(args, None)  # untrained adapters: the random encoder still reads the query
    out = capsys.readouterr().out
    assert 'found' in out and 'frames seed 0' in out
    shift = float(re.search(r'query sensitivity: .* mean over videos ([0-9.]+)', out).group(1))
    assert shift > 0  # the other-colour query differs, so an untrained model's scores move
