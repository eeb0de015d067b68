"""tools/test.py --show-dir: each demo task draws --show-num pictures of its own predictions
(freshly built models on tiny synthetic sets)."""
import os
import os.path as osp

import cv2
import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _config(name):
    return osp.join(REPO_ROOT, 'configs', 'demo', f'{name}.py')


def _video_options(data_root):
    """The retrieval / caption / QA demos on 8 training and 6 validation videos (one
    generated set shared by the three)."""
    opts = []
    for split in ('train', 'val', 'test'):
        opts += [f'{split}_dataloader.dataset.data_root={data_root}',
                 f'{split}_dataloader.dataset.generator.num_train=8',
                 f'{split}_dataloader.dataset.generator.num_val=6']
    return ['--cfg-options', f'data_root={data_root}', *opts]


def _grounding_options(data_root):
    """The grounding demo on 3 validation videos (its feature folders stay relative to
    data_root)."""
    opts = [f'data_root={data_root}']
    for split in ('train', 'val', 'test'):
        opts += [f'{split}_dataloader.dataset.data_root={data_root}',
                 f'{split}_dataloader.dataset.generator.num_train_videos=8',
                 f'{split}_dataloader.dataset.generator.num_val_videos=3']
    return ['--cfg-options', *opts]


def _pictures(folder):
    names = sorted(os.listdir(folder))
    for name in names:
        img = cv2.imread(osp.join(folder, name))
        assert img is not None and img.shape[1] >= 600 and img.shape[0] >= 60, name
    return names


@pytest.fixture(scope='module')
def video_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp('show') / 'data'
    folder.mkdir()
    return str(folder)


@pytest.fixture(autouse=True)
def _short_paths(tmp_path, monkeypatch):
    """Run from tmp_path with relative paths: MMEngine formats the config (yapf) several
    times per run, and long absolute paths in it make that cost seconds."""
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize('demo, prefixes', [
    ('retrieval_demo', ['t2v_000', 't2v_001', 'v2t_000', 'v2t_001']),
    ('caption_demo', ['caption_000', 'caption_001', 'caption_002', 'caption_003']),
    ('qa_demo', ['qa_000', 'qa_001', 'qa_002', 'qa_003']),
])
def test_show_dir_draws_show_num_pictures(demo, prefixes, video_data, tmp_path, load_tool):
    os.symlink(video_data, 'data')  # generated once for the three demos
    load_tool('test').main([_config(demo), 'none', '--work-dir', 'work', '--show-dir', 'show',
                            '--show-num', '4', *_video_options('data')])
    show = str(tmp_path / 'show')
    names = _pictures(show)
    assert [n[:len(p)] for n, p in zip(names, prefixes)] == prefixes and len(names) == 4


def test_show_dir_grounding_timelines(tmp_path, load_tool):
    show = str(tmp_path / 'show')
    load_tool('test').main([_config('grounding_demo'), 'none', '--work-dir', 'work',
                            '--show-dir', 'show', '--show-num', '4', *_grounding_options('data')])
    names = _pictures(show)
    assert len(names) == 4 and all(n.startswith('moment_') for n in names)
