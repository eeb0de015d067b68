"""tools/test.py --show-dir: each demo task draws --show-num pictures of its own predictions
(freshly built models on tiny synthetic sets)."""
import os
import os.path as osp
import sys

import cv2
import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO_ROOT, 'tests', 'tools'))
from test_train_test_tools import _tiny_options  # noqa: E402


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


def _pictures(folder):
    names = sorted(os.listdir(folder))
    for name in names:
        img = cv2.imread(osp.join(folder, name))
        assert img is not None and img.shape[1] >= 600 and img.shape[0] >= 60, name
    return names


@pytest.fixture(scope='module')
def video_data(tmp_path_factory):
    return str(tmp_path_factory.mktemp('show') / 'data')


@pytest.mark.parametrize('demo, prefixes', [
    ('retrieval_demo', ['t2v_000', 't2v_001', 'v2t_000', 'v2t_001']),
    ('caption_demo', ['caption_000', 'caption_001', 'caption_002', 'caption_003']),
    ('qa_demo', ['qa_000', 'qa_001', 'qa_002', 'qa_003']),
])
def test_show_dir_draws_show_num_pictures(demo, prefixes, video_data, tmp_path, load_tool):
    show = str(tmp_path / 'show')
    load_tool('test').main([_config(demo), 'none', '--work-dir', str(tmp_path / 'work'),
                            '--show-dir', show, '--show-num', '4', *_video_options(video_data)])
    names = _pictures(show)
    assert [n[:len(p)] for n, p in zip(names, prefixes)] == prefixes and len(names) == 4


def test_show_dir_grounding_timelines(tmp_path, load_tool):
    show = str(tmp_path / 'show')
    data = str(tmp_path / 'data')
    load_tool('test').main([_config('grounding_demo'), 'none', '--work-dir',
                            str(tmp_path / 'work'), '--show-dir', show, '--show-num', '4',
                            *_tiny_options(data)])
    names = _pictures(show)
    assert len(names) == 4 and all(n.startswith('moment_') for n in names)
