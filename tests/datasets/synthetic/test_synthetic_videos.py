"""Tests for the synthetic moving-shapes video set."""
import json
import os
import os.path as osp

import cv2  # noqa: F401  (before decord, whose zlib otherwise breaks cv2's PNG codec)
import decord
import numpy as np
import pytest

from mmvpeft.datasets.synthetic.videos import (COLORS, MANIFEST_NAME, SHAPES,
                                               generate_synthetic_videos, split_annotations)

SMALL = dict(num_videos=5, duration=12.0, fps=4, size=(80, 48), seed=3)


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def decode_all(path):
    vr = decord.VideoReader(path)
    return vr.get_batch(list(range(len(vr)))).asnumpy(), vr.get_avg_fps()


def color_pixels(frames, color):
    """Per-frame count of pixels matching ``color``'s high/low channel pattern."""
    high = np.array(COLORS[color]) > 127
    x = frames.astype(np.int16)
    match = np.where(high, x > 150, x < 100).all(-1)
    return match.sum((1, 2)), match


@pytest.fixture(scope='module')
def default_set(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synth_default'))
    return root, generate_synthetic_videos(root)


def test_annotation_format_and_windows(default_set):
    root, ann_file = default_set
    assert ann_file == osp.join(root, 'annotations.jsonl')
    records = read_jsonl(ann_file)
    vids = sorted({r['vid'] for r in records})
    assert len(vids) == 24
    assert len({r['qid'] for r in records}) == len(records)
    by_vid = {}
    for r in records:
        assert set(r) == {'qid', 'query', 'vid', 'duration', 'relevant_windows'}
        assert r['duration'] == 16.0
        [[start, end]] = r['relevant_windows']
        assert start == int(start) and end == int(end)
        assert 0 <= start < end <= r['duration']
        assert 2 <= end - start <= 8
        words = r['query'].split()
        assert words[0] == 'a' and words[1] in COLORS and words[2] in SHAPES
        by_vid.setdefault(r['vid'], []).append((start, end, words[1]))
    for events in by_vid.values():
        assert 2 <= len(events) <= 3
        events.sort()
        # Non-overlapping, with at least 1 s between events.
        assert all(a[1] + 1 <= b[0] for a, b in zip(events, events[1:])), events
        # Distinct colours within a video keep each query unambiguous.
        assert len({e[2] for e in events}) == len(events)


def test_videos_readable_with_expected_frames(tmp_path):
    ann_file = generate_synthetic_videos(str(tmp_path), **SMALL)
    vids = {r['vid'] for r in read_jsonl(ann_file)}
    assert len(vids) == SMALL['num_videos']
    for vid in vids:
        vr = decord.VideoReader(osp.join(str(tmp_path), 'videos', f'{vid}.mp4'))
        assert len(vr) == 48
        assert vr.get_avg_fps() == pytest.approx(4.0)
        assert vr[0].shape == (48, 80, 3)  # size is (width, height)


def test_event_visible_only_in_its_window_and_moves_as_described(default_set):
    root, ann_file = default_set
    checked_directions = set()
    for r in read_jsonl(ann_file):
        frames, fps = decode_all(osp.join(root, 'videos', f"{r['vid']}.mp4"))
        assert len(frames) == 64
        color = r['query'].split()[1]
        counts, mask = color_pixels(frames, color)
        [[start, end]] = r['relevant_windows']
        t = np.arange(len(frames)) / fps
        inside = (t >= start) & (t < end)
        assert counts[inside].min() >= 50, (r, counts)
        assert counts[~inside].max() <= 2, (r, counts)
        # Centroid of the shape at the first and last frame of the window.
        first, last = np.flatnonzero(inside)[[0, -1]]
        ys0, xs0 = np.nonzero(mask[first])
        ys1, xs1 = np.nonzero(mask[last])
        dx, dy = xs1.mean() - xs0.mean(), ys1.mean() - ys0.mean()
        q = r['query']
        if 'right' in q and 'right to left' not in q:
            direction = 'right'
            assert dx > 20 and abs(dy) < 2, (q, dx, dy)
        elif 'left' in q:
            direction = 'left'
            assert dx < -20 and abs(dy) < 2, (q, dx, dy)
        elif 'up' in q or 'top' in q:
            direction = 'up'
            assert dy < -20 and abs(dx) < 2, (q, dx, dy)
        else:
            direction = 'down'
            assert 'down' in q or 'bottom' in q
            assert dy > 20 and abs(dx) < 2, (q, dx, dy)
        checked_directions.add(direction)
    assert checked_directions == {'right', 'left', 'up', 'down'}


def test_deterministic_given_seed(tmp_path):
    a = generate_synthetic_videos(str(tmp_path / 'a'), **SMALL)
    b = generate_synthetic_videos(str(tmp_path / 'b'), **SMALL)
    c = generate_synthetic_videos(str(tmp_path / 'c'), **dict(SMALL, seed=4))
    with open(a, 'rb') as fa, open(b, 'rb') as fb, open(c, 'rb') as fc:
        bytes_a, bytes_b, bytes_c = fa.read(), fb.read(), fc.read()
    assert bytes_a == bytes_b
    assert bytes_a != bytes_c
    fa, _ = decode_all(str(tmp_path / 'a' / 'videos' / 'synth_0000.mp4'))
    fb, _ = decode_all(str(tmp_path / 'b' / 'videos' / 'synth_0000.mp4'))
    np.testing.assert_array_equal(fa, fb)


def test_idempotent_and_regenerates_on_new_params(tmp_path):
    root = str(tmp_path)
    ann_file = generate_synthetic_videos(root, **SMALL)
    files = [ann_file, osp.join(root, MANIFEST_NAME)] + [
        osp.join(root, 'videos', f'synth_{i:04d}.mp4') for i in range(5)]
    stamps = {p: os.stat(p).st_mtime_ns for p in files}
    # Same parameters: nothing is rewritten.
    os.utime(ann_file, ns=(1, 1))
    assert generate_synthetic_videos(root, **SMALL) == ann_file
    assert os.stat(ann_file).st_mtime_ns == 1
    assert all(os.stat(p).st_mtime_ns == stamps[p] for p in files[1:])
    old = read_jsonl(ann_file)

    # A missing video is regenerated.
    os.remove(files[-1])
    generate_synthetic_videos(root, **SMALL)
    assert osp.isfile(files[-1]) and read_jsonl(ann_file) == old

    # Different parameters regenerate, and videos no longer in the set go.
    generate_synthetic_videos(root, **dict(SMALL, num_videos=4, seed=9))
    new = read_jsonl(ann_file)
    assert new != old
    assert {r['vid'] for r in new} == {f'synth_{i:04d}' for i in range(4)}
    assert not osp.exists(files[-1])
    with open(osp.join(root, MANIFEST_NAME)) as f:
        assert json.load(f)['params']['seed'] == 9


def test_train_val_split_disjoint_videos(tmp_path):
    root = str(tmp_path)
    ann_file = generate_synthetic_videos(root, **dict(SMALL, num_videos=8), val_ratio=0.25)
    records = read_jsonl(ann_file)
    train = read_jsonl(osp.join(root, 'annotations_train.jsonl'))
    val = read_jsonl(osp.join(root, 'annotations_val.jsonl'))
    train_vids, val_vids = {r['vid'] for r in train}, {r['vid'] for r in val}
    assert len(val_vids) == 2 and len(train_vids) == 6
    assert not train_vids & val_vids
    assert sorted(train + val, key=lambda r: r['qid']) == records

    # Without val_ratio the split files are removed on regeneration.
    generate_synthetic_videos(root, **dict(SMALL, num_videos=8))
    assert not osp.exists(osp.join(root, 'annotations_val.jsonl'))

    # The helper alone: deterministic, other folder.
    out = tmp_path / 'split'
    out.mkdir()
    t1, v1 = split_annotations(ann_file, 0.5, seed=1, out_dir=str(out))
    with open(v1) as f:
        first = f.read()
    split_annotations(ann_file, 0.5, seed=1, out_dir=str(out))
    with open(v1) as f:
        assert f.read() == first
    assert len({r['vid'] for r in read_jsonl(v1)}) == 4
    with pytest.raises(ValueError):
        split_annotations(ann_file, 1.0)


def test_short_duration_and_bad_args(tmp_path):
    # 5 s holds at most two 2 s events with a 1 s gap.
    ann_file = generate_synthetic_videos(str(tmp_path), num_videos=3, duration=5.0,
                                         events_per_video=(3, 3))
    for r in read_jsonl(ann_file):
        [[start, end]] = r['relevant_windows']
        assert 0 <= start and end <= 5.0 and end - start >= 2
    assert max(len([r for r in read_jsonl(ann_file) if r['vid'] == v])
               for v in ('synth_0000', 'synth_0001', 'synth_0002')) <= 2
    with pytest.raises(ValueError):
        generate_synthetic_videos(str(tmp_path / 'x'), duration=1.0)
    with pytest.raises(ValueError):
        generate_synthetic_videos(str(tmp_path / 'y'), events_per_video=(3, 2))
