"""tools/benchmark.py's library side: bf16 autocast and prefix-cache rounds run on CPU."""
import math
import os.path as osp

from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmvpeft.apis.benchmarking import benchmark_model

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
