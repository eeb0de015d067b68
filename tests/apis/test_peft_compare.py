"""The PEFT comparison: presets replace a config's methods; rows are measured per method."""
import json
import os.path as osp

import pytest
from mmengine.config import Config

from mmvpeft.apis.peft_compare import (METHOD_PRESETS, compare_methods, final_metric,
                                       format_table, with_method)

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(REPO_ROOT, 'configs', 'demo', 'retrieval_demo.py')


def test_with_method_replaces_the_methods_of_both_towers():
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'read_tacos.py'))
    lora = with_method(cfg, 'lora')
    assert lora.model.video_backbone.peft == [dict(type='LoRA', rank=8)]
    assert lora.model.text_backbone.peft == [dict(type='LoRA', rank=8)]
    assert lora.model.pvla_loss is None  # PVLA needs READ in both towers
    assert with_method(cfg, 'read').model.pvla_loss is not None
    assert cfg.model.video_backbone.peft[0].type == 'READ'  # the input is not modified
    # A config in the legacy adapter= spelling: no second READ survives the swap.
    old = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'read_tacos.py'))
    for key in ('video_backbone', 'text_backbone'):
        old.model[key].pop('peft')
        old.model[key].update(adapter=dict(type='ReadAdapter', hidden_dim=32),
                              adapter_layers=(-4, -3, -2, -1))
    lora = with_method(old, 'lora')
    assert lora.model.video_backbone.adapter is None
    assert lora.model.video_backbone.peft == [dict(type='LoRA', rank=8)]
    assert old.model.video_backbone.adapter is not None
    with pytest.raises(KeyError, match='unknown PEFT preset'):
        with_method(cfg, 'nope')


# The READ presets use the last 4 blocks; the demo's tiny CLIP has 2.
SHALLOW = [m for m in METHOD_PRESETS if 'read' not in m]


def test_every_preset_builds_and_trains_on_the_demo_config():
    rows = compare_methods(DEMO, SHALLOW, batch_size=2, num_clips=3, num_words=6, steps=1,
                           isolate=False)
    by = {r['method']: r for r in rows}
    assert set(by) == set(SHALLOW)
    # Same block trained: partial fine-tuning and token mixing train the same parameters.
    assert by['partial']['trainable'] == by['token_mixing']['trainable']
    assert by['linear_probe']['trainable'] == 1  # the temperature only
    assert by['full']['trainable'] == by['full']['total']
    assert 1 < by['bitfit']['trainable'] < by['lora']['trainable'] < by['partial']['trainable']
    assert all(r['step_ms_median'] > 0 for r in rows)
    table = format_table(rows)
    assert table.splitlines()[0].startswith('method | trainable | share | step ms')
    assert len(table.splitlines()) == 2 + len(SHALLOW)


def test_cli_measures_in_a_fresh_process_and_reads_work_dirs(tmp_path, load_tool, capsys):
    run = tmp_path / 'work' / '20261201_000000' / 'vis_data'
    run.mkdir(parents=True)
    with open(run / 'scalars.json', 'w') as f:
        f.write(json.dumps({'loss': 1.0, 'step': 1}) + '\n')
        f.write(json.dumps({'t2v/R@1': 12.5, 'step': 5}) + '\n')
        f.write(json.dumps({'t2v/R@1': 37.5, 'step': 10}) + '\n')
    assert final_metric(str(tmp_path / 'work'), 't2v/R@1') == 37.5
    assert final_metric(str(tmp_path / 'work'), 'v2t/R@1') is None
    tool = load_tool('compare_peft')
    rows = tool.main([DEMO, '--methods', 'token_mixing', '--num-clips', '2', '--steps', '1',
                      '--work-dirs', f'token_mixing={tmp_path / "work"}',
                      '--metric', 't2v/R@1'])
    assert rows[0]['metric'] == 37.5
    out = capsys.readouterr().out
    assert 'token_mixing | ' in out and '| 37.50' in out


def test_a_preset_that_does_not_fit_is_skipped_and_a_failing_one_keeps_its_row(monkeypatch):
    import mmvpeft.apis.peft_compare as pc
    monkeypatch.setitem(pc.METHOD_PRESETS, 'broken', ([dict(type='NoSuchPEFT')], []))
    rows = compare_methods(DEMO, ['read', 'broken', 'bitfit'], batch_size=2, num_clips=2,
                           num_words=6, steps=1, isolate=False)
    by = {r['method']: r for r in rows}
    assert [r['method'] for r in rows] == ['read', 'broken', 'bitfit']
    # read's layer -4 on the tiny 2-block towers: skipped before anything is built.
    assert by['read']['skipped'] == ('READ layer(s) [-4, -3] are beyond the 2-block video '
                                     'tower (valid -2..1)')
    assert by['broken']['error'].startswith('KeyError: ') and 'NoSuchPEFT' in by['broken']['error']
    assert by['bitfit']['trainable'] > 1  # measured after the failure
    lines = format_table(rows).splitlines()
    assert lines[0].endswith('| note') and len(lines) == 5
    assert lines[2].startswith('read | - | - | - | - | skipped: READ layer(s) [-4, -3]')
    assert lines[3].startswith('broken | - | - | - | - | failed: KeyError')
    assert lines[4].startswith('bitfit | 2,') and lines[4].endswith('| ')


def test_cli_writes_the_table_and_the_rows_file_with_skipped_presets(tmp_path, load_tool,
                                                                     capsys):
    out = tmp_path / 'rows.json'
    rows = load_tool('compare_peft').main([DEMO, '--methods', 'read', 'token_mixing+read',
                                           '--out', str(out)])
    assert [r['method'] for r in rows] == ['read', 'token_mixing+read']
    assert all('skipped' in r for r in rows)
    printed = capsys.readouterr().out
    assert 'read | - | - | - | - | skipped: READ layer(s) [-4, -3]' in printed
    saved = json.loads(out.read_text())
    assert saved['rows'] == rows and saved['config'] == DEMO
