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
READ_DEMO = osp.join(REPO_ROOT, 'configs', 'demo', 'read_demo.py')


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


def _last_val_metrics(work_dir):
    """The last validation metrics of the newest run in ``work_dir``, at full precision."""
    runs = sorted(d for d in os.listdir(work_dir) if osp.isdir(osp.join(work_dir, d)))
    with open(osp.join(work_dir, runs[-1], 'vis_data', 'scalars.json')) as f:
        rows = [json.loads(line) for line in f]
    last = [r for r in rows if 'mIoU' in r][-1]
    return {k: v for k, v in last.items() if k not in ('step', 'time', 'data_time')}


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

    # test.py on the last checkpoint reproduces the last validation of training exactly
    # (the demo validates and tests on the same split); the untrained model does not.
    last_val = _last_val_metrics(work)
    out = str(tmp_path / 'preds' / 'sub.jsonl')
    metrics = test.main([DEMO, osp.join(work, 'epoch_3.pth'), '--work-dir', work,
                         '--dump', out, *_tiny_options(data)])
    assert {k: float(v) for k, v in metrics.items()} == last_val
    untrained = test.main([DEMO, 'none', '--work-dir', work, *_tiny_options(data)])
    assert untrained['mIoU'] != metrics['mIoU']
    with open(out) as f:
        rows = [json.loads(line) for line in f]
    with open(osp.join(data, 'annotations_val.jsonl')) as f:
        assert [r['qid'] for r in rows] == [json.loads(line)['qid'] for line in f]
    assert set(rows[0]) == {'qid', 'query', 'vid', 'pred_relevant_windows',
                            'pred_saliency_scores'}
    w = rows[0]['pred_relevant_windows']
    assert len(w[0]) == 3 and all(a[2] >= b[2] for a, b in zip(w, w[1:]))


def test_resume_is_exact(tmp_path, load_tool):
    """Two epochs then a resumed third equal three epochs in one go, bit for bit (CPU,
    AdamW): the resumed run restores weights, optimizer moments, schedule and sampler epoch,
    and every op here is deterministic on CPU."""
    train = load_tool('train')
    data = str(tmp_path / 'data')
    # scale_schedule=False: a 2-epoch run would otherwise follow a 2-epoch schedule (the
    # resumed run then continues that schedule, restored from the checkpoint).
    extra = ('model.encoder.dropout=0.0', 'train_dataloader.sampler.seed=0',
             'scale_schedule=False')
    train.main([DEMO, '--work-dir', str(tmp_path / 'a'), *_tiny_options(data, 3, extra)])
    train.main([DEMO, '--work-dir', str(tmp_path / 'b'), *_tiny_options(data, 2, extra)])
    train.main([DEMO, '--work-dir', str(tmp_path / 'b'), '--resume',
                *_tiny_options(data, 3, extra)])
    # The resumed run trained epoch 3 only (else it trivially equals run a).
    runs = sorted(d for d in os.listdir(tmp_path / 'b') if osp.isdir(tmp_path / 'b' / d))
    with open(tmp_path / 'b' / runs[-1] / f'{runs[-1]}.log') as f:
        epochs = set(re.findall(r'Epoch\(train\)\s+\[(\d+)\]', f.read()))
    assert epochs == {'3'}
    a, b = _state(tmp_path / 'a' / 'epoch_3.pth'), _state(tmp_path / 'b' / 'epoch_3.pth')
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _readme_recipe():
    """The custom_imports recipe of docs/configs.md: {file name: text} and the shell command."""
    with open(osp.join(REPO_ROOT, 'docs', 'configs.md')) as f:
        section = f.read().split('## Extending', 1)[1]
    code = re.search(r'```python\n(.*?)```', section, re.S).group(1)
    command = re.search(r'```bash\n(.*?)```', section, re.S).group(1).strip()
    files = {}
    for chunk in re.split(r'^# (\w+\.py)\n', code, flags=re.M)[1:]:
        if chunk.endswith('.py'):
            name = chunk
        else:
            files[name] = chunk
    assert set(files) == {'my_plugin.py', 'my_config.py'}, files.keys()
    return files, command


def test_custom_imports_plugin(tmp_path, monkeypatch):
    """The docs' custom_imports recipe (docs/configs.md), as written, run from a folder
    outside the repo."""
    files, command = _readme_recipe()
    user = tmp_path / 'user_project'
    user.mkdir()
    for name, text in files.items():
        (user / name).write_text(text.replace('/path/to/mmvpeft', REPO_ROOT))
    command = command.replace('/path/to/mmvpeft', REPO_ROOT)
    opts = ' '.join(f"'{o}'" for o in _tiny_options(str(tmp_path / 'data'), epochs=1))
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO_ROOT,
               PATH=osp.dirname(sys.executable) + os.pathsep + os.environ['PATH'])
    proc = subprocess.run(['bash', '-c', f'{command} {opts}'], cwd=user, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(next((user / 'work_dirs' / 'my_config').glob('*/vis_data/scalars.json'))) as f:
        assert 'loss_cls' in f.readline()
    # The config the run used builds the plugin's class as the head's loss.
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmvpeft.registry import MODELS
    monkeypatch.syspath_prepend(str(user))
    cfg = Config.fromfile(str(user / 'my_config.py'))
    init_default_scope('mmvpeft')
    loss = MODELS.build(cfg.model).head.losses['loss_cls']
    assert type(loss) is sys.modules['my_plugin'].MyBCELoss
    assert type(loss).__module__ == 'my_plugin'


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


def test_amp_without_cuda_selects_bfloat16_autocast(tmp_path):
    """``--amp`` on a CPU-only machine resolves to BF16AutocastOptimWrapper (what it does in
    training: tests/engine/test_optim_wrapper.py); with CUDA, MMEngine's AmpOptimWrapper."""
    from mmvpeft.apis import load_config
    cfg = load_config(DEMO, str(tmp_path), None, 'none', True)
    if torch.cuda.is_available():
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    else:
        assert cfg.optim_wrapper.type == 'BF16AutocastOptimWrapper'
        assert 'loss_scale' not in cfg.optim_wrapper


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


def _read_options(data_root, epochs, extra=()):
    """read_demo.py on 8 tiny synthetic videos (6 for training, 2 for validation)."""
    gen = dict(num_videos=8, duration=8.0, fps=4, val_ratio=0.25)
    opts = [f'data_root={data_root}', f'train_cfg.max_epochs={epochs}',
            'default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=1']
    for split in ('train', 'val', 'test'):
        opts += [f'{split}_dataloader.dataset.data_root={data_root}']
        opts += [f'{split}_dataloader.dataset.generator.{k}={v}' for k, v in gen.items()]
    return ['--cfg-options', *opts, *extra]


def test_two_processes_match_one_read_pvla_adamw(tmp_path):
    """READ in both frozen CLIP towers + PVLA + AdamW (read_demo.py): gloo DDP with 2 x
    batch 2 ends with the same weights as 1 process with batch 4. The 2-process run also
    checkpoints activations in both towers and the encoder (exact, so the weights agree all
    the same: checkpointing composes with DDP)."""
    data = str(tmp_path / 'data')
    common = ['train_dataloader.sampler.seed=0', 'train_dataloader.dataset.indices=8',
              'train_cfg.val_interval=100', 'default_hooks.checkpoint.save_best=None',
              ]
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO_ROOT)
    one = [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), READ_DEMO,
           '--work-dir', str(tmp_path / 'one'),
           *_read_options(data, 2, common + ['train_dataloader.batch_size=4'])]
    proc = subprocess.run(one, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = ['bash', osp.join(REPO_ROOT, 'tools', 'dist_train.sh'), READ_DEMO, '2',
           '--work-dir', str(tmp_path / 'two'),
           *_read_options(data, 2, common + ['train_dataloader.batch_size=2',
                                             'model.video_backbone.grad_checkpointing=True',
                                             'model.text_backbone.grad_checkpointing=True',
                                             'model.encoder.grad_checkpointing=True'])]
    proc = subprocess.run(two, env=dict(env, PORT='29534'), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = _state(tmp_path / 'one' / 'epoch_2.pth'), _state(tmp_path / 'two' / 'epoch_2.pth')
    assert a.keys() == b.keys() and any('read_adapter' in k for k in a)
    # Adam divides by sqrt(v), so float-level differences of the all-reduced gradient stay
    # float-level (measured <= 4.3e-7) except where the true gradient is exactly zero: the
    # key bias of attention (softmax ignores a per-query constant), whose "gradient" is pure
    # rounding noise that Adam turns into steps of up to lr. 2e-6 is ~1% of one step here.
    for k in a:
        d = (a[k] - b[k]).abs()
        if k.endswith('self_attn.in_proj_bias'):
            n = d.numel() // 3
            assert d[n:2 * n].max() <= 2 * 1e-3 * 4, k  # 4 steps of at most ~lr (1e-3)
            d = torch.cat([d[:n], d[2 * n:]])
        assert d.max() <= 2e-6, (k, d.max().item())
