"""Low-resource subsets: exact size, stratified by video, seeded, recorded."""
import json
from collections import Counter

import pytest

from mmvpeft.datasets.low_resource import stratified_subset


def _data(per_video=(1, 2, 3, 4, 10, 20)):
    return [dict(qid=f'{v}_{i}', vid=f'v{v}') for v, n in enumerate(per_video)
            for i in range(n)]


@pytest.mark.parametrize('fraction', [0.1, 0.25, 0.5, 1.0])
def test_fraction_is_exact_stratified_and_seeded(fraction):
    data = _data()
    keep = stratified_subset(data, fraction=fraction, seed=3)
    assert len(keep) == max(1, round(fraction * len(data))) and keep == sorted(set(keep))
    per_video = Counter(data[i]['vid'] for i in keep)
    totals = Counter(d['vid'] for d in data)
    for vid, n in totals.items():  # every video keeps floor or ceil of its share
        share = n * len(keep) / len(data)
        assert int(share) <= per_video.get(vid, 0) <= int(share) + 1, vid
    assert keep == stratified_subset(data, fraction=fraction, seed=3)
    if fraction < 1:
        others = {tuple(stratified_subset(data, fraction=fraction, seed=s)) for s in range(6)}
        assert len(others) > 1


def test_count_and_bad_options():
    data = _data()
    assert len(stratified_subset(data, count=7, seed=0)) == 7
    with pytest.raises(ValueError, match='exactly one of fraction or count'):
        stratified_subset(data, fraction=0.5, count=3)
    with pytest.raises(ValueError, match=r'fraction must be in \(0, 1\]'):
        stratified_subset(data, fraction=1.5)
    with pytest.raises(ValueError, match='count must be an int in 1..40'):
        stratified_subset(data, count=41)


def test_dataset_option_subsets_and_records(tmp_path):
    from mmengine.registry import init_default_scope

    from mmvpeft.registry import DATASETS
    init_default_scope('mmvpeft')
    lines = [dict(qid=i, query=f'q{i}', vid=f'v{i % 5}', duration=10.0,
                  relevant_windows=[[1, 2]]) for i in range(40)]
    ann = tmp_path / 'ann.jsonl'
    ann.write_text('\n'.join(json.dumps(r) for r in lines))
    record = tmp_path / 'work' / 'train_subset.json'
    ds = DATASETS.build(dict(type='MomentRetrievalDataset', ann_file=str(ann),
                             train_subset=dict(fraction=0.25, seed=1, record=str(record))))
    assert len(ds) == 10
    saved = json.loads(record.read_text())
    assert saved['num_kept'] == 10 and saved['num_queries'] == 40 and saved['seed'] == 1
    assert sorted(saved['qids']) == sorted(ds[i]['qid'] for i in range(10))
    assert {v: len(q) for v, q in saved['per_video'].items()} == {f'v{i}': 2 for i in range(5)}
    with pytest.raises(ValueError, match='unknown keys'):
        DATASETS.build(dict(type='MomentRetrievalDataset', ann_file=str(ann),
                            train_subset=dict(frac=0.1)))
