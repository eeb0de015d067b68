"""tools/benchmark_token_mixing.py builds the mixing config and its plain twin."""
import os.path as osp

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_mixing_and_plain_train_the_same_parameters(load_tool):
    tool = load_tool('benchmark_token_mixing')
    r = tool.main([osp.join(REPO_ROOT, 'configs', 'demo', 'retrieval_demo.py'),
                   '--num-frames', '3', '--rounds', '2'])
    assert r['trainable']['mixing'] == r['trainable']['plain'] > 0
    assert len(r['ratios']) == 2 and r['ratio_median'] > 0
