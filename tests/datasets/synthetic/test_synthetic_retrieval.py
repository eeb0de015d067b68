"""Synthetic captioned videos: content, balance, determinism and data safety."""
import json
import os
import time
from collections import Counter

import cv2  # noqa: F401  (before decord, whose zlib otherwise breaks cv2's PNG codec)
import decord
import numpy as np
import pytest
from mmengine.registry import init_default_scope

from mmvpeft.datasets import SyntheticRetrievalDataset, generate_synthetic_retrieval
from mmvpeft.datasets.synthetic.retrieval import MANIFEST_NAME, NUM_COMBOS, balanced_combos
from mmvpeft.datasets.synthetic.videos import COLORS, QUERY_TEMPLATES, SHAPES

SMALL = dict(num_train=6, num_val=4, seed=1)


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope='module')
def default_set(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synth_retrieval') / 'data')
    return root, generate_synthetic_retrieval(root)


def test_default_set_is_balanced_and_captioned(default_set):
    root, out = default_set
    train, val = read_jsonl(out['train']), read_jsonl(out['val'])
    assert len(train) == 120 and len(val) == 24
    assert not {r['vid'] for r in train} & {r['vid'] for r in val}
    combos = [(r['color'], r['shape'], r['direction']) for r in val]
    assert len(set(combos)) == 24  # every val caption matches exactly one val video
    assert set(Counter(c for c, _, _ in combos).values()) == {4}
    assert set(Counter(s for _, s, _ in combos).values()) == {8}
    assert set(Counter(d for _, _, d in combos).values()) == {6}
    # Training covers all 72 combinations.
    assert len({(r['color'], r['shape'], r['direction']) for r in train}) == NUM_COMBOS
    for r in train + val:
        assert r['captions'] == [t.format(color=r['color'], shape=r['shape'])
                                 for t in QUERY_TEMPLATES[r['direction']]]
        assert r['video'] == f'{r["vid"]}.mp4'
        assert os.path.isfile(os.path.join(out['video_dir'], r['video']))


def test_balanced_combos_are_distinct_and_prefix_balanced():
    combos = balanced_combos(np.random.default_rng(5))
    assert len(set(combos)) == NUM_COMBOS
    assert {c for c, _, _ in combos} == set(COLORS) and {s for _, s, _ in combos} == set(SHAPES)
    head = combos[:24]
    for axis, count in ((0, 4), (1, 8), (2, 6)):
        assert set(Counter(c[axis] for c in head).values()) == {count}


def centroid(frame, color):
    high = np.array(COLORS[color]) > 127
    x = frame.astype(np.int16)
    ys, xs = np.nonzero(np.where(high, x > 150, x < 100).all(-1))
    assert len(xs) > 20, 'shape not visible'
    return xs.mean(), ys.mean()


def test_videos_show_the_captioned_motion(default_set):
    root, out = default_set
    for r in read_jsonl(out['val'])[:8]:
        vr = decord.VideoReader(os.path.join(out['video_dir'], r['video']))
        assert len(vr) == 16 and vr[0].shape == (64, 64, 3)
        (x0, y0), (x1, y1) = centroid(vr[0].asnumpy(), r['color']), centroid(
            vr[len(vr) - 1].asnumpy(), r['color'])
        dx, dy = x1 - x0, y1 - y0
        expected = {'right': dx > 15, 'left': dx < -15, 'down': dy > 15, 'up': dy < -15}
        assert expected[r['direction']], (r, dx, dy)
        assert (abs(dy) if r['direction'] in ('left', 'right') else abs(dx)) < 3


def test_deterministic_and_not_rewritten(tmp_path):
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    out_a = generate_synthetic_retrieval(a, **SMALL)
    generate_synthetic_retrieval(b, **SMALL)
    for split in ('train', 'val'):
        with open(out_a[split]) as fa, open(os.path.join(b, f'annotations_{split}.jsonl')) as fb:
            assert fa.read() == fb.read()
    mtime = os.path.getmtime(out_a['train'])
    time.sleep(0.01)
    generate_synthetic_retrieval(a, **SMALL)
    assert os.path.getmtime(out_a['train']) == mtime
    assert read_jsonl(out_a['train']) != read_jsonl(
        generate_synthetic_retrieval(str(tmp_path / 'c'), **dict(SMALL, seed=2))['train'])


def test_new_params_replace_only_our_files(tmp_path):
    root = tmp_path / 'set'
    generate_synthetic_retrieval(str(root), **SMALL)
    (root / 'my_notes.txt').write_text('keep me')
    (root / 'videos' / 'my_clip.mp4').write_text('keep me too')
    generate_synthetic_retrieval(str(root), **dict(SMALL, num_train=3))
    assert (root / 'my_notes.txt').read_text() == 'keep me'
    assert (root / 'videos' / 'my_clip.mp4').exists()
    assert not (root / 'videos' / 'train_0005.mp4').exists()  # ours, no longer in the set
    assert len(read_jsonl(root / 'annotations_train.jsonl')) == 3
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    assert manifest['complete'] and manifest['params']['num_train'] == 3


def test_refuses_a_folder_it_did_not_write(tmp_path):
    root = tmp_path / 'user_data'
    (root / 'videos').mkdir(parents=True)
    (root / 'videos' / 'precious.mp4').write_text('x')
    with pytest.raises(FileExistsError, match=f'{root}.*not empty'):
        generate_synthetic_retrieval(str(root), **SMALL)
    assert sorted(os.listdir(root)) == ['videos']
    assert os.listdir(root / 'videos') == ['precious.mp4']
    # A manifest that is not ours (another generator's) is refused too.
    (root / MANIFEST_NAME).write_text(json.dumps(dict(generator='other', files=['videos'])))
    with pytest.raises(FileExistsError, match='not written by'):
        generate_synthetic_retrieval(str(root), **SMALL)
    # And an entry pointing outside the folder is never deleted.
    outside = tmp_path / 'outside.txt'
    outside.write_text('x')
    (root / MANIFEST_NAME).write_text(json.dumps(dict(
        generator='mmvpeft.datasets.synthetic_retrieval', files=['../outside.txt'])))
    with pytest.raises(FileExistsError, match='inside'):
        generate_synthetic_retrieval(str(root), **SMALL)
    assert outside.exists() and (root / 'videos' / 'precious.mp4').exists()


def test_interrupted_run_is_redone(tmp_path):
    root = tmp_path / 'set'
    out = generate_synthetic_retrieval(str(root), **SMALL)
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    (root / MANIFEST_NAME).write_text(json.dumps(dict(manifest, complete=False)))
    os.remove(out['val'])
    generate_synthetic_retrieval(str(root), **SMALL)
    assert len(read_jsonl(out['val'])) == 4
    assert json.loads((root / MANIFEST_NAME).read_text())['complete']


def test_dataset_generates_on_first_use(tmp_path):
    init_default_scope('mmvpeft')
    root = str(tmp_path / 'ds')
    pipeline = [dict(type='LoadVideoFrames', num_frames=8),
                dict(type='VideoResize', short_side=32), dict(type='VideoCenterCrop', size=32),
                dict(type='FormatVideo'),
                dict(type='CLIPTokenize', key='captions', multi=True, trim_padding=True),
                dict(type='PackRetrievalInputs')]
    train = SyntheticRetrievalDataset(root, 'train', generator=SMALL, pipeline=pipeline)
    assert len(train) == 2 * SMALL['num_train']
    val = SyntheticRetrievalDataset(root, 'val', generator=SMALL, pipeline=pipeline,
                                    test_mode=True)
    assert len(val) == SMALL['num_val']
    item = val[0]
    assert item['inputs']['imgs'].shape == (8, 1, 3, 32, 32)
    assert item['inputs']['text_tokens'].shape[0] == 2
    with pytest.raises(ValueError, match='split'):
        SyntheticRetrievalDataset(root, 'test', generator=SMALL)


def test_runner_builds_the_demo_loaders(tmp_path):
    """The config-level wiring: registry names resolve and batches have the documented form."""
    from mmengine.runner import Runner
    init_default_scope('mmvpeft')
    pipeline = [dict(type='LoadVideoFrames', num_frames=8, sampling='random'),
                dict(type='VideoResize', short_side=32), dict(type='VideoCenterCrop', size=32),
                dict(type='FormatVideo'),
                dict(type='CLIPTokenize', key='captions', multi=True, trim_padding=True),
                dict(type='PackRetrievalInputs')]
    dataset = dict(type='SyntheticRetrievalDataset', data_root=str(tmp_path / 'demo'),
                   generator=SMALL, pipeline=pipeline)
    loaders = {mode: Runner.build_dataloader(dict(
        batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=mode == 'train'),
        collate_fn=dict(type='mmvpeft.video_captions_collate'),
        dataset=dict(dataset, split=mode, test_mode=mode == 'val')), seed=0)
        for mode in ('train', 'val')}
    train = next(iter(loaders['train']))['inputs']
    assert train['imgs'].shape == (4, 8, 1, 3, 32, 32) and train['text_tokens'].shape[0] == 4
    assert train['text_video_index'].tolist() == [0, 1, 2, 3]
    val = next(iter(loaders['val']))
    assert val['inputs']['imgs'].shape == (4, 8, 1, 3, 32, 32)
    assert val['inputs']['text_video_index'].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [s['caption_ids'][1] for s in val['data_samples']] == [
        f'val_{i:04d}#1' for i in range(4)]
