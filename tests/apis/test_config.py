"""The one resolve pass: every change it makes to a config is logged, listed in the header
of WORK_DIR/resolved_config.py, and that file reloads to the same config and model."""
import logging
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

from mmvpeft.apis import build_runner, load_config
from mmvpeft.apis.config import (UNSET, config_changes, config_diff, resolve_config,
                                 resolved_config_text)
from mmvpeft.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
READ_DEMO = osp.join(REPO_ROOT, 'configs', 'demo', 'read_demo.py')


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def log_lines():
    handler = _Lines()
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


def test_config_diff_names_each_leaf_that_changed():
    before = dict(a=1, b=dict(c=[dict(type='X', k=1), dict(type='Y')]), gone=2, same=(1, 2))
    after = dict(a=2, b=dict(c=[dict(type='Z', k=1), dict(type='Y')]), new=3, same=[1, 2])
    assert config_diff(before, after) == [('a', 1, 2), ('b.c[0].type', 'X', 'Z'),
                                          ('new', UNSET, 3), ('gone', 2, UNSET)]
    # A list that changes length is one change, shown by its transform types.
    (change, ) = config_diff(dict(p=[dict(type='A'), dict(type='B')]),
                             dict(p=[dict(type='C')]))
    assert change == ('p', [dict(type='A'), dict(type='B')], [dict(type='C')])
    assert config_diff(dict(x=1), dict(x=1)) == []


def test_every_kind_of_change_is_logged_and_listed_in_the_header(tmp_path, log_lines):
    child = tmp_path / 'child.py'  # a knob set in a child config
    child.write_text(f'_base_ = [{READ_DEMO!r}]\ndata_root = {str(tmp_path / "data")!r}\n')
    cfg = load_config(str(child), work_dir=str(tmp_path / 'work'), cfg_options={
        'train_cfg.max_epochs': 3, 'clip_len': 2.0, 'prefix_cache': str(tmp_path / 'cache'),
        'train_dataloader.dataset.train_subset': dict(fraction=0.5, seed=0)})
    data = str(tmp_path / 'data')
    expected = [
        f"train_dataloader.dataset.data_root: 'data/demo_read' -> {data!r}  [knob]",
        'train_cfg.max_epochs: 30 -> 3  [--cfg-options]',
        'clip_len: 1.0 -> 2.0  [--cfg-options]',
        'param_scheduler[1].end: 30 -> 3  [schedule]',
        'train_dataloader.dataset.pipeline: [LoadVideoClips, VideoResize, VideoCenterCrop, '
        'FormatVideo, CLIPTokenize, PackMomentInputs] -> [LoadPrefixCache, CLIPTokenize, '
        'PackMomentInputs]  [prefix_cache]',
        f"work_dir: <unset> -> {str(tmp_path / 'work')!r}  [runtime]",
        "train_dataloader.dataset.train_subset.record: <unset> -> "
        f"{str(tmp_path / 'work' / 'train_subset.json')!r}  [train_subset]",
    ]
    changes = [str(c) for c in config_changes(cfg)]
    header = ''.join(line for line in resolved_config_text(cfg).splitlines(True)
                     if line.startswith('#'))
    for line in expected:
        assert line in changes
        assert f'config: {line}' in log_lines  # one log line each
        assert f'#   {line}\n' in header
    # The clip_len knob reached the clip loader of every split.
    assert 'val_dataloader.dataset.pipeline[0].clip_len: 1.0 -> 2.0  [knob]' in changes
    assert cfg.train_dataloader.dataset.pipeline[0].type == 'LoadPrefixCache'
    assert f'({len(changes)}):' in header


def test_nothing_to_change_but_the_runtime(tmp_path):
    cfg = resolve_config(READ_DEMO, work_dir=str(tmp_path), log=False)
    assert {c.step for c in config_changes(cfg)} == {'runtime'}
    assert config_changes(Config(dict(a=1))) == []


def test_the_resolved_config_file_reloads_and_builds_the_same_model(tmp_path):
    work = tmp_path / 'work'
    cfg = load_config(READ_DEMO, work_dir=str(work), cfg_options={
        'data_root': str(tmp_path / 'data'), 'train_cfg.max_epochs': 4})
    torch.manual_seed(0)
    runner = build_runner(cfg)
    path = work / 'resolved_config.py'
    assert path.is_file()
    text = path.read_text()
    assert text.startswith('# The config of this run: ' + READ_DEMO)
    assert 'param_scheduler[1].end: 30 -> 4  [schedule]' in text
    again = Config.fromfile(str(path))
    assert again.to_dict() == cfg.to_dict()
    init_default_scope('mmvpeft')
    torch.manual_seed(0)
    model = MODELS.build(again.model)
    theirs = runner.model.state_dict()
    assert set(model.state_dict()) == set(theirs)
    assert all(torch.equal(v, theirs[k]) for k, v in model.state_dict().items())


def test_a_config_not_from_the_resolve_pass_writes_no_resolved_file(tmp_path):
    cfg = Config.fromfile(READ_DEMO)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.experiment_name = 'plain'
    build_runner(cfg)
    assert not (tmp_path / 'work' / 'resolved_config.py').exists()
