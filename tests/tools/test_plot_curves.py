"""tools/analysis/plot_curves.py on two short demo runs, and the TensorBoard switch of
default_runtime.py's visualizer (the second run logs to TensorBoard too, where installed)."""
import glob
import importlib.util
import json
import os
import os.path as osp

import pytest

from mmvpeft.visualization.curves import collect_series, read_scalars

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(REPO_ROOT, 'configs', 'demo', 'grounding_demo.py')
HAS_TENSORBOARD = importlib.util.find_spec('tensorboard') is not None


def _options(seed):
    """2 epochs of the grounding demo on 8 + 3 videos, validating each epoch. Paths stay
    relative (the runs start in their folder): MMEngine formats the config with yapf several
    times a run, and long absolute paths make that cost seconds."""
    opts = ['data_root=data', 'train_dataloader.batch_size=4', 'train_cfg.max_epochs=2',
            'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1',
            'default_hooks.logger.interval=1', f'randomness.seed={seed}']
    for split in ('train', 'val', 'test'):
        opts += [f'{split}_dataloader.dataset.data_root=data',
                 f'{split}_dataloader.dataset.generator.num_train_videos=8',
                 f'{split}_dataloader.dataset.generator.num_val_videos=3']
    return ['--cfg-options', *opts]


@pytest.fixture(scope='module')
def two_runs(tmp_path_factory, load_tool):
    """Two 2-epoch grounding demo runs (seeds 0 and 1); the second with the TensorBoard
    backend switched on (when tensorboard is installed) through a one-line child config."""
    root = tmp_path_factory.mktemp('curves')
    train = load_tool('train')
    child = root / 'grounding_tb.py'
    backends = ["dict(type='LocalVisBackend')"]
    if HAS_TENSORBOARD:
        backends.append("dict(type='TensorboardVisBackend')")
    child.write_text(f"_base_ = [{DEMO!r}]\n"
                     f"visualizer = dict(vis_backends=[{', '.join(backends)}])\n")
    here = os.getcwd()
    os.chdir(root)
    try:
        train.main([DEMO, '--work-dir', 'seed0', *_options(0)])
        train.main([str(child), '--work-dir', 'seed1', *_options(1)])
    finally:
        os.chdir(here)
    return [str(root / 'seed0'), str(root / 'seed1')]


def _logged(work_dir):
    (path,) = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_plot_curves_draws_the_logged_points(two_runs, load_tool, tmp_path):
    out = str(tmp_path / 'curves.png')
    spec = importlib.util.spec_from_file_location(
        'plot_curves', osp.join(REPO_ROOT, 'tools', 'analysis', 'plot_curves.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    drawn = tool.main([*two_runs, '--keys', 'loss', 'R1@0.5', '--out', out])
    with open(out, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    for run in two_runs:
        rows = _logged(run)
        train = [r for r in rows if 'loss' in r]
        val = [r for r in rows if 'R1@0.5' in r]
        assert drawn['loss'][run] == ('train', [float(r['iter']) for r in train],
                                      [r['loss'] for r in train])
        assert drawn['R1@0.5'][run] == ('val', [1.0, 2.0], [r['R1@0.5'] for r in val])
    # The two seeds are two different curves.
    assert drawn['loss'][two_runs[0]][2] != drawn['loss'][two_runs[1]][2]
    svg = str(tmp_path / 'curves.svg')
    tool.main([two_runs[0], '--keys', 'val:mIoU', '--out', svg])
    with open(svg) as f:
        assert '<svg' in f.read(2000)


def test_plot_curves_names_the_keys_that_exist(two_runs):
    with pytest.raises(KeyError, match=r'no run logged "R1@0\.9".*training keys: .*loss.*'
                                       r'validation keys: .*R1@0\.5'):
        collect_series(two_runs, ['loss', 'R1@0.9'])
    with pytest.raises(KeyError, match='no run logged "train:mIoU"'):
        collect_series(two_runs, ['train:mIoU'])
    with pytest.raises(FileNotFoundError, match='no \\*/vis_data/scalars.json'):
        read_scalars(osp.dirname(two_runs[0]))


@pytest.mark.skipif(not HAS_TENSORBOARD, reason='tensorboard is not installed (optional: '
                    'pip install -e ".[tracking]"; the tests extra installs it)')
def test_tensorboard_backend_writes_the_logged_scalars(two_runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    run = two_runs[1]
    (events, ) = glob.glob(osp.join(run, '*', 'vis_data', 'events.out.tfevents.*'))
    acc = EventAccumulator(events)
    acc.Reload()
    tags = set(acc.Tags()['scalars'])
    rows = _logged(run)
    checked = 0
    for key in ('loss', 'loss_cls', 'lr', 'R1@0.5', 'mIoU'):
        assert key in tags, sorted(tags)
        logged = [(r['step'], r[key]) for r in rows if key in r]
        read = [(e.step, e.value) for e in acc.Scalars(key)]
        assert [s for s, _ in read] == [s for s, _ in logged]
        # TensorBoard stores float32.
        assert [v for _, v in read] == pytest.approx([v for _, v in logged], rel=1e-6)
        checked += len(read)
    assert checked >= 2 * 10 + 2 * 2
    assert not glob.glob(osp.join(two_runs[0], '*', 'vis_data', 'events.out.tfevents.*'))
