"""End-to-end runs of tools/train.py and tools/test.py on a tiny synthetic set (CPU)."""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

import mmvpeft  # noqa: F401  (allow-lists the types MMEngine checkpoints hold)

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

DEMO = osp.join(REPO_ROOT, 'configs', 'demo', 'grounding_demo.py')


def _tiny_options(data_root, epochs=2, extra=()):
    opts = [f'data_root={data_root}', 'train_dataloader.batch_size=4',
            f'train_cfg.max_epochs={epochs}', 'train_cfg.val_interval=1',
            'default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=1']
    for split in ('train', 'val', 'test'):
        loader = f'{split}_dataloader.dataset'
        opts += [f'{loader}.data_root={data_root}',
                 f'{loader}.generator.num_train_videos=8', f'{loader}.generator.num_val_videos=3',
                 f'{loader}.pipeline.0.feat_dirs={data_root}/clip_features',
                 f'{loader}.pipeline.1.feat_dir={data_root}/text_features']
    return ['--cfg-options', *opts, *extra]


def _state(path):
    return torch.load(path, map_location='cpu', weights_only=True)['state_dict']


def test_train_resume_test_and_dump(tmp_path, load_tool):
    train, test = load_tool('train'), load_tool('test')
    data, work = str(tmp_path / 'data'), str(tmp_path / 'work')
    train.main([DEMO, '--work-dir', work, *_tiny_options(data, epochs=2)])
    assert osp.isfile(osp.join(work, 'epoch_2.pth'))
    # weights_only loading works: mmvpeft allow-lists what MMEngine stores (no pickle code).
    ckpt = torch.load(osp.join(work, 'epoch_2.pth'), map_location='cpu', weights_only=True)
    assert ckpt['meta']['epoch'] == 2

    # Resuming to epoch 3 continues from epoch 2's optimizer and schedule state.
    train.main([DEMO, '--work-dir', work, '--resume', *_tiny_options(data, epochs=3)])
    log_dirs = sorted(d for d in os.listdir(work) if osp.isdir(osp.join(work, d)))
    with open(osp.join(work, log_dirs[-1], f'{log_dirs[-1]}.log')) as f:
        log = f.read()
    assert 'resumed epoch: 2' in log and re.search(r'Epoch\(train\)\s+\[3\]', log)
    assert not re.search(r'Epoch\(train\)\s+\[1\]', log)

    out = str(tmp_path / 'preds' / 'sub.jsonl')
    metrics = test.main([DEMO, osp.join(work, 'epoch_3.pth'), '--work-dir', work,
                         '--dump', out, *_tiny_options(data)])
    assert 0 <= metrics['R1@0.5'] <= 100 and 'chance/R1@0.5' in metrics
    with open(out) as f:
        rows = [json.loads(line) for line in f]
    with open(osp.join(data, 'annotations_val.jsonl')) as f:
        assert [r['qid'] for r in rows] == [json.loads(line)['qid'] for line in f]
    assert set(rows[0]) == {'qid', 'query', 'vid', 'pred_relevant_windows',
                            'pred_saliency_scores'}
    w = rows[0]['pred_relevant_windows']
    assert len(w[0]) == 3 and all(a[2] >= b[2] for a, b in zip(w, w[1:]))


def test_resume_is_exact(tmp_path, load_tool):
    """Two epochs then a resumed third equal three epochs in one go."""
    train = load_tool('train')
    data = str(tmp_path / 'data')
    extra = ('model.encoder.dropout=0.0', 'train_dataloader.sampler.seed=0')
    train.main([DEMO, '--work-dir', str(tmp_path / 'a'), *_tiny_options(data, 3, extra)])
    train.main([DEMO, '--work-dir', str(tmp_path / 'b'), *_tiny_options(data, 2, extra)])
    train.main([DEMO, '--work-dir', str(tmp_path / 'b'), '--resume',
                *_tiny_options(data, 3, extra)])
    a, b = _state(tmp_path / 'a' / 'epoch_3.pth'), _state(tmp_path / 'b' / 'epoch_3.pth')
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_custom_imports_plugin(tmp_path, load_tool):
    """A user's component in their own module, registered via custom_imports."""
    plugin = tmp_path / 'my_plugin.py'
    plugin.write_text(
        'from torch import nn\n'
        'from mmvpeft.registry import MODELS\n'
        'from mmvpeft.models.losses.focal_loss import SigmoidFocalLoss\n\n'
        '@MODELS.register_module()\n'
        'class MyBCELoss(SigmoidFocalLoss):\n'
        '    def __init__(self, loss_weight=1.0):\n'
        '        super().__init__(gamma=0.0, alpha=None, loss_weight=loss_weight)\n')
    cfg = tmp_path / 'plugin_cfg.py'
    cfg.write_text(f"_base_ = ['{DEMO}']\n"
                   "custom_imports = dict(imports=['my_plugin'], allow_failed_imports=False)\n"
                   "model = dict(head=dict(loss_cls=dict(_delete_=True, type='MyBCELoss')))\n")
    sys.path.insert(0, str(tmp_path))
    try:
        load_tool('train').main([str(cfg), '--work-dir', str(tmp_path / 'w'),
                             *_tiny_options(str(tmp_path / 'data'), epochs=1)])
    finally:
        sys.path.remove(str(tmp_path))
    with open(next((tmp_path / 'w').glob('*/vis_data/scalars.json'))) as f:
        assert 'loss_cls' in f.readline()
    assert type(sys.modules['my_plugin'].MyBCELoss).__name__ == 'type'


def test_unknown_type_names_the_key(tmp_path, load_tool):
    with pytest.raises(KeyError, match='NoSuchHead'):
        load_tool('train').main([DEMO, '--work-dir', str(tmp_path / 'w'),
                             *_tiny_options(str(tmp_path / 'data'), epochs=1,
                                            extra=('model.head.type=NoSuchHead',))])


def test_missing_config_and_checkpoint_errors(tmp_path, load_tool):
    with pytest.raises(FileNotFoundError, match='config file not found'):
        load_tool('train').main([str(tmp_path / 'nope.py')])
    with pytest.raises(FileNotFoundError, match='checkpoint not found'):
        load_tool('test').main([DEMO, str(tmp_path / 'nope.pth')])


def test_amp_on_cpu_is_a_clear_error(tmp_path, load_tool):
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    with pytest.raises(RuntimeError, match='--amp needs a CUDA device'):
        load_tool('train').main([DEMO, '--amp', '--work-dir', str(tmp_path)])


def test_two_processes_match_one(tmp_path):
    """gloo DDP with 2 x batch 4 ends with the same weights as 1 process with batch 8."""
    data = str(tmp_path / 'data')
    # SGD: its update is linear in the gradient, so float-level differences in the all-reduced
    # gradient stay float-level (Adam divides by sqrt(v) and inflates them for ~0 gradients).
    common = ['model.encoder.dropout=0.0', 'train_dataloader.sampler.seed=0',
              'optim_wrapper.optimizer.type=SGD', 'optim_wrapper.optimizer.lr=0.1',
              'optim_wrapper.optimizer.weight_decay=0.0',
              'train_dataloader.dataset.indices=16', 'val_dataloader.dataset.indices=4',
              'default_hooks.checkpoint.save_best=None']
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO_ROOT)
    one = [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), DEMO,
           '--work-dir', str(tmp_path / 'one'),
           *_tiny_options(data, 2, common + ['train_dataloader.batch_size=8'])]
    subprocess.run(one, check=True, env=env, capture_output=True)
    two = ['bash', osp.join(REPO_ROOT, 'tools', 'dist_train.sh'), DEMO, '2',
           '--work-dir', str(tmp_path / 'two'),
           *_tiny_options(data, 2, common + ['train_dataloader.batch_size=4'])]
    proc = subprocess.run(two, env=dict(env, PORT='29533'), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = _state(tmp_path / 'one' / 'epoch_2.pth'), _state(tmp_path / 'two' / 'epoch_2.pth')
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
