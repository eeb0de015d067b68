import json

import numpy as np

from mmvpeft.datasets import generate_synthetic_moments

SMALL = dict(num_train_videos=6, num_val_videos=2)


def _read(root, split):
    with open(f'{root}/annotations_{split}.jsonl') as f:
        return [json.loads(line) for line in f]


def test_deterministic_and_idempotent(tmp_path):
    a, b = tmp_path / 'a', tmp_path / 'b'
    generate_synthetic_moments(str(a), **SMALL)
    generate_synthetic_moments(str(b), **SMALL)
    assert _read(a, 'train') == _read(b, 'train') and _read(a, 'val') == _read(b, 'val')
    rec = _read(a, 'train')[0]
    np.testing.assert_array_equal(np.load(a / 'clip_features' / f'{rec["vid"]}.npz')['features'],
                                  np.load(b / 'clip_features' / f'{rec["vid"]}.npz')['features'])
    stamp = (a / 'synthetic_moment_manifest.json').stat().st_mtime_ns
    generate_synthetic_moments(str(a), **SMALL)  # same parameters: nothing rewritten
    assert (a / 'synthetic_moment_manifest.json').stat().st_mtime_ns == stamp
    generate_synthetic_moments(str(a), **dict(SMALL, seed=1))  # other parameters: regenerated
    assert _read(a, 'train') != _read(b, 'train')


def test_windows_valid_and_event_visible(tmp_path):
    generate_synthetic_moments(str(tmp_path), **SMALL)
    by_vid = {}
    for rec in _read(tmp_path, 'train'):
        (s, e), = rec['relevant_windows']
        assert 0 <= s < e <= rec['duration']
        by_vid.setdefault(rec['vid'], []).append((s, e))
    for vid, windows in by_vid.items():
        norms = np.linalg.norm(np.load(tmp_path / 'clip_features' / f'{vid}.npz')['features'],
                               axis=1)
        in_event = np.zeros(len(norms), bool)
        for s, e in windows:
            in_event[int(s // 2):int(np.ceil(e / 2))] = True
        # Event clips carry a concept vector on top of the noise: a clearly larger norm.
        assert norms[in_event].mean() > 1.1 * norms[~in_event].mean()
