"""``--cfg-options`` values as typed, and the CPU thread choice of the tools."""
import argparse

import pytest
import torch
from mmengine.config import Config

from mmvpeft.apis import CfgOptionsAction, configure_cpu_threads
from mmvpeft.apis.config_checks import parse_option_value


@pytest.mark.parametrize('text, value', [
    ('/x/v dir ü', '/x/v dir ü'), (' /a b ', '/a b'), ('1', 1), ('1e-3', 1e-3),
    ('None', None), ('True', True), ('[a, b c]', ['a', 'b c']), ('(1,2)', (1, 2)),
    ('a,b', ['a', 'b']), ('[(1, 2), [x y, z]]', [(1, 2), ['x y', 'z']]),
    ("'a, b'", 'a, b'), ('"7"', '7'), ('[]', []), ('ViT-B-32', 'ViT-B-32'),
])
def test_values_keep_their_inner_characters(text, value):
    assert parse_option_value(text) == value
    assert type(parse_option_value(text)) is type(value)


def test_action_reads_every_item_and_names_a_bad_one(capsys):
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction)
    args = parser.parse_args(['--cfg-options', 'data_root=/x/v dir ü', 'model.a=[1, 2]'])
    assert args.cfg_options == {'data_root': '/x/v dir ü', 'model.a': [1, 2]}
    with pytest.raises(SystemExit):
        parser.parse_args(['--cfg-options', 'k=[1, 2'])
    assert "'k=[1, 2': unbalanced brackets" in capsys.readouterr().err


def test_cpu_threads_leave_room_for_loader_workers(monkeypatch):
    old = torch.get_num_threads()
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    monkeypatch.setattr('os.sched_getaffinity', lambda pid: set(range(8)), raising=False)
    cfg = Config(dict(train_dataloader=dict(num_workers=2)))
    try:
        assert configure_cpu_threads(cfg) == 3 and torch.get_num_threads() == 3
        cfg.train_dataloader.num_workers = 8
        assert configure_cpu_threads(cfg) == 1
        monkeypatch.setenv('WORLD_SIZE', '2')
        cfg.launcher, cfg.train_dataloader.num_workers = 'pytorch', 0
        assert configure_cpu_threads(cfg) == 2  # half of this process's 4 cores
        assert configure_cpu_threads(cfg, threads=5) == 5
        monkeypatch.setenv('OMP_NUM_THREADS', '1')
        assert configure_cpu_threads(cfg) is None  # the user's choice stays
        with pytest.raises(ValueError, match='--cpu-threads must be at least 1'):
            configure_cpu_threads(cfg, threads=0)
    finally:
        torch.set_num_threads(old)



@pytest.mark.parametrize('tool, positional', [
    ('train', ['c.py']), ('test', ['c.py', 'none']), ('demo', ['v.mp4', 'a query']),
    ('benchmark', ['c.py']), ('build_prefix_cache', ['c.py', 'cache']),
    ('compare_peft', ['c.py']), ('low_resource', ['c.py'])])
def test_every_tool_keeps_spaces_in_option_values(tool, positional, load_tool):
    """Every tool with --cfg-options reads values as typed (MMEngine's DictAction drops the
    spaces of '/x/v dir ü'), as the shell hands them over."""
    args = load_tool(tool).parse_args([*positional, '--cfg-options', 'data_root=/x/v dir ü'])
    assert args.cfg_options == {'data_root': '/x/v dir ü'}
