"""tools/benchmark.py's library side: bf16 autocast and prefix-cache rounds run on CPU."""
import math
import os.path as osp

from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmvpeft.apis.benchmarking import benchmark_model, memory_setting

READ_DEMO = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
                     'configs', 'demo', 'read_demo.py')


def test_amp_and_prefix_cache_rounds_on_cpu():
    init_default_scope('mmvpeft')
    cfg = Config.fromfile(READ_DEMO)
    r = benchmark_model(cfg, batch_size=2, num_clips=4, num_words=6, steps=1, device='cpu',
                        prefix_cache=True, amp=True)
    assert r['amp'] and r['prefix_start'] == dict(vision=1, text=1)
    assert len(r['round_ms_median']) == 2 and r['cache_speedup'] > 0
    assert set(r['loss_keys']) == {'loss_cls', 'loss_reg', 'loss_iou', 'loss_pvla'}
    assert math.isfinite(r['step_ms_median'])


def test_saved_bytes_counts_each_saved_storage_once_and_leaves_weights_out():
    """A linear layer saves its input (the weight is left out); relu saves its output, which
    pow then saves again (one storage, counted once); sum saves nothing: 5*4*4 + 5*3*4."""
    import torch

    from mmvpeft.apis.benchmarking import saved_bytes
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 3)
    x = torch.randn(5, 4)
    n, loss = saved_bytes(lin, lambda: torch.relu(lin(x)).pow(2).sum())
    assert n == 5 * 4 * 4 + 5 * 3 * 4
    loss.backward()  # the hooks pass tensors through unchanged
    assert saved_bytes(lin, lambda: torch.no_grad()(lin)(x))[0] == 0


def test_memory_settings_saved_bytes_are_deterministic_and_lowered_by_checkpointing(
        load_tool, capsys):
    """``tools/benchmark.py --synthetic --memory`` on the tiny READ demo (both towers, PVLA),
    in process: the same setting twice gives the same byte count; checkpointing lowers it;
    every setting prints a line with "saved"."""
    tool = load_tool('benchmark')
    args = [READ_DEMO, '--synthetic', '--memory', '--memory-in-process', '--clips', '2', '4',
            '--batch-size', '2', '--num-words', '5', '--device', 'cpu']
    first = tool.main(args)
    out = capsys.readouterr().out
    assert len(first) == 8 and all('error' not in r for r in first)
    assert len([line for line in out.splitlines()
                if line.startswith('clips') and 'saved for backward' in line]) == 8
    by_key = {(r['num_clips'], r['prefix_cache'], r['checkpointing']): r for r in first}
    cfg = Config.fromfile(READ_DEMO)
    again = memory_setting(cfg, batch_size=2, num_clips=4, num_words=5, device='cpu',
                           checkpointing=True, prefix_cache=False)
    assert again['saved_bytes'] == by_key[4, False, True]['saved_bytes']
    for n in (2, 4):
        for cache in (False, True):
            plain, ckpt = by_key[n, cache, False], by_key[n, cache, True]
            assert 0 < ckpt['saved_bytes'] < plain['saved_bytes']
            assert set(ckpt['checkpointed']) == {'video_backbone', 'text_backbone', 'encoder'}
            for k, v in plain['losses'].items():  # checkpointing changes memory, not losses
                assert math.isclose(ckpt['losses'][k], v, rel_tol=1e-5)
    assert by_key[4, False, False]['saved_bytes'] > by_key[2, False, False]['saved_bytes']
    assert by_key[2, True, False]['prefix_start'] == dict(vision=1, text=1)
    assert 'checkpointing saved' in out and '| clips | checkpointing |' in out
