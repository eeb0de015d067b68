"""Retrieval datasets (generic JSON lines, MSR-VTT, MSVD, DiDeMo), packing and collate."""
import csv
import json
import pickle
import shutil

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from torch.utils.data import DataLoader

from mmvpeft.datasets import (AnnotationError, DiDeMoRetrievalDataset, MSRVTTRetrievalDataset,
                              MSVDRetrievalDataset, VideoTextRetrievalDataset, retrieval_collate)
from mmvpeft.registry import DATASETS, FUNCTIONS

# Width a multiple of 32: decord mis-sizes other mp4v widths.
W, H, NUM_FRAMES = 64, 32, 6


def pipeline(num_frames=4, short_video='repeat'):
    return [dict(type='LoadVideoFrames', num_frames=num_frames, short_video=short_video),
            dict(type='VideoResize', short_side=16),
            dict(type='VideoCenterCrop', size=16),
            dict(type='FormatVideo'),
            dict(type='CLIPTokenize', key='captions', multi=True, trim_padding=True),
            dict(type='PackRetrievalInputs')]


@pytest.fixture(scope='module', autouse=True)
def scope():
    init_default_scope('mmvpeft')


@pytest.fixture(scope='module')
def mp4(tmp_path_factory):
    """One tiny video (frame i has brightness 20 * i); copied under every vid's name."""
    path = tmp_path_factory.mktemp('retrieval_video') / 'src.mp4'
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), 4, (W, H))
    for i in range(NUM_FRAMES):
        writer.write(np.full((H, W, 3), 20 * i, np.uint8))
    writer.release()
    return path


def put_videos(mp4, folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(mp4, folder / name)


def write_jsonl(path, records):
    path.write_text(''.join((r if isinstance(r, str) else json.dumps(r)) + '\n' for r in records))


# -- generic JSON lines ------------------------------------------------------------------

@pytest.fixture
def generic(tmp_path, mp4):
    root = tmp_path / 'generic'
    put_videos(mp4, root / 'videos', ['a.mp4', 'b.mp4', 'clip_c.mp4'])
    write_jsonl(root / 'ann.jsonl', [
        dict(vid='a', captions=['a man cooks', 'someone fries eggs']),
        dict(vid='b', captions=['  a dog runs  ']),
        dict(vid='c', captions=['a cat sleeps', 'a cat naps', 'a cat rests'], video='clip_c.mp4'),
    ])
    return root


def test_generic_train_items_are_pairs_and_paths_join_data_root(generic):
    ds = DATASETS.build(dict(type='VideoTextRetrievalDataset', data_root=str(generic),
                             ann_file='ann.jsonl', video_dir='videos'))
    assert len(ds) == 6
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    assert [i['caption_ids'] for i in infos] == [['a#0'], ['a#1'], ['b#0'], ['c#0'], ['c#1'],
                                                 ['c#2']]
    assert infos[2]['captions'] == ['a dog runs']  # stripped
    assert infos[1]['caption_index'] == 1
    assert [i['video_index'] for i in infos] == [0, 0, 1, 2, 2, 2]
    assert infos[0]['video_path'] == str(generic / 'videos' / 'a.mp4')
    assert infos[3]['video_path'] == str(generic / 'videos' / 'clip_c.mp4')


def test_generic_test_items_are_videos(generic):
    ds = VideoTextRetrievalDataset(data_root=str(generic), ann_file='ann.jsonl',
                                   video_dir='videos', test_mode=True)
    assert len(ds) == 3
    info = ds.get_data_info(2)
    assert info['vid'] == 'c' and info['captions'] == ['a cat sleeps', 'a cat naps', 'a cat rests']
    assert info['caption_ids'] == ['c#0', 'c#1', 'c#2'] and info['video_index'] == 2


@pytest.mark.parametrize('line,match', [
    ('{"vid": "x", "captions": ["ok"]', r'ann.jsonl:2: invalid JSON'),
    ({'vid': 'x'}, r'ann.jsonl:2: missing field "captions" \(vid=\'x\'\)'),
    ({'vid': 'x', 'captions': 'not a list'}, r'ann.jsonl:2: field "captions" must be.*vid=\'x\''),
    ({'vid': 'x', 'captions': ['ok', 7]}, r'ann.jsonl:2: field "captions\[1\]".*vid=\'x\''),
    ({'vid': 'x', 'captions': ['ok', '  ']}, r'ann.jsonl:2: field "captions\[1\]"'),
    ({'captions': ['ok']}, r'ann.jsonl:2: field "vid"'),
    ({'vid': 'a', 'captions': ['dup']},
     r"ann.jsonl:2: duplicate vid 'a' \(first at .*ann.jsonl:1\)"),
])
def test_generic_malformed_lines_are_named(tmp_path, line, match):
    write_jsonl(tmp_path / 'ann.jsonl', [dict(vid='a', captions=['fine']), line])
    with pytest.raises(AnnotationError, match=match):
        VideoTextRetrievalDataset(data_root=str(tmp_path), ann_file='ann.jsonl')


def test_missing_video_and_annotation_are_named(generic):
    (generic / 'videos' / 'b.mp4').unlink()
    with pytest.raises(FileNotFoundError, match=r"1 video file\(s\) not found.*b\.mp4 \(vid='b'\)"):
        VideoTextRetrievalDataset(data_root=str(generic), ann_file='ann.jsonl', video_dir='videos')
    # Opt out of the build-time check: the item fails when it is loaded, naming the file.
    ds = VideoTextRetrievalDataset(data_root=str(generic), ann_file='ann.jsonl',
                                   video_dir='videos', check_files=False, pipeline=pipeline())
    with pytest.raises(FileNotFoundError, match=r'b\.mp4'):
        ds[2]
    with pytest.raises(FileNotFoundError, match='nothere.jsonl'):
        VideoTextRetrievalDataset(data_root=str(generic), ann_file='nothere.jsonl')


def test_skip_corrupt_in_training_only(generic):
    (generic / 'videos' / 'b.mp4').write_bytes(b'garbage' * 100)
    ds = VideoTextRetrievalDataset(data_root=str(generic), ann_file='ann.jsonl',
                                   video_dir='videos', pipeline=pipeline(), skip_corrupt=True)
    assert ds[2]['data_samples']['vid'] != 'b'  # another item was drawn
    ds = VideoTextRetrievalDataset(data_root=str(generic), ann_file='ann.jsonl',
                                   video_dir='videos', pipeline=pipeline(), skip_corrupt=True,
                                   test_mode=True)
    with pytest.raises(Exception, match=r'b\.mp4'):
        ds[1]


# -- collate -----------------------------------------------------------------------------

def test_train_loader_batches_pairs(generic):
    ds = VideoTextRetrievalDataset(data_root=str(generic), ann_file='ann.jsonl',
                                   video_dir='videos', pipeline=pipeline())
    collate = FUNCTIONS.get('mmvpeft.retrieval_collate')
    assert collate is retrieval_collate
    batch = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate)))
    inp = batch['inputs']
    assert inp['imgs'].shape == (4, 4, 1, 3, 16, 16) and inp['imgs'].dtype == torch.uint8
    assert inp['video_mask'].all() and inp['video_mask'].shape == (4, 4)
    assert inp['text_tokens'].shape[0] == 4 and inp['text_tokens'].dtype == torch.long
    assert inp['text_mask'].dtype == torch.bool
    assert inp['text_mask'].shape == inp['text_tokens'].shape
    torch.testing.assert_close(inp['text_video_index'], torch.arange(4))
    assert [s['caption_ids'] for s in batch['data_samples']] == [['a#0'], ['a#1'], ['b#0'],
                                                                 ['c#0']]
    assert [s['video_index'] for s in batch['data_samples']] == [0, 0, 1, 2]


def test_test_loader_batches_videos_with_all_captions(generic):
    ds = VideoTextRetrievalDataset(data_root=str(generic), ann_file='ann.jsonl',
                                   video_dir='videos', pipeline=pipeline(), test_mode=True)
    batch = next(iter(DataLoader(ds, batch_size=3, collate_fn=retrieval_collate)))
    inp = batch['inputs']
    assert inp['imgs'].shape[0] == 3 and inp['text_tokens'].shape[0] == 6
    torch.testing.assert_close(inp['text_video_index'], torch.tensor([0, 0, 1, 2, 2, 2]))
    lengths = inp['text_mask'].sum(1)
    # Each caption's EOT sits at its own last valid position; padding is zero.
    for row, n in zip(inp['text_tokens'], lengths):
        assert row[n - 1] == 49407 and (row[n:] == 0).all()
    ids = [cid for s in batch['data_samples'] for cid in s['caption_ids']]
    assert len(ids) == len(set(ids)) == 6
    assert batch['data_samples'][2]['captions'] == ['a cat sleeps', 'a cat naps', 'a cat rests']


def test_collate_pads_videos_with_fewer_frames(generic, mp4):
    # 'keep' returns a 6-frame video's 6 frames when 8 are asked: padding is masked.
    ds = VideoTextRetrievalDataset(data_root=str(generic), ann_file='ann.jsonl',
                                   video_dir='videos', test_mode=True,
                                   pipeline=pipeline(num_frames=8, short_video='keep'))
    short = ds[0]
    long_item = VideoTextRetrievalDataset(
        data_root=str(generic), ann_file='ann.jsonl', video_dir='videos', test_mode=True,
        pipeline=pipeline(num_frames=8))[1]
    assert short['inputs']['imgs'].shape[0] == NUM_FRAMES
    batch = retrieval_collate([short, long_item])
    mask = batch['inputs']['video_mask']
    assert mask.shape == (2, 8)
    assert mask[0].tolist() == [True] * NUM_FRAMES + [False] * 2 and mask[1].all()
    assert (batch['inputs']['imgs'][0, NUM_FRAMES:] == 0).all()
    torch.testing.assert_close(batch['inputs']['imgs'][0, :NUM_FRAMES], short['inputs']['imgs'])


def test_collate_rejects_mixed_frame_sizes():
    def item(hw, vid):
        return dict(inputs=dict(imgs=torch.zeros((2, 1, 3) + hw, dtype=torch.uint8),
                                text_tokens=torch.ones(1, 3, dtype=torch.long),
                                text_mask=torch.ones(1, 3, dtype=torch.bool)),
                    data_samples=dict(vid=vid))
    with pytest.raises(ValueError, match='different frame shapes'):
        retrieval_collate([item((8, 8), 'x'), item((8, 9), 'y')])


# -- MSR-VTT -----------------------------------------------------------------------------

@pytest.fixture
def msrvtt(tmp_path, mp4):
    root = tmp_path / 'msrvtt'
    put_videos(mp4, root / 'videos', [f'video{i}.mp4' for i in range(4)])
    data = dict(videos=[dict(video_id=f'video{i}', url='u') for i in range(4)],
                sentences=[dict(video_id='video0', caption='c0 first', sen_id=0),
                           dict(video_id='video2', caption='c2 first', sen_id=1),
                           dict(video_id='video0', caption='c0 second', sen_id=2),
                           dict(video_id='video1', caption='c1 only', sen_id=3),
                           dict(video_id='video3', caption='c3 test-only', sen_id=4)])
    (root / 'MSRVTT_data.json').write_text(json.dumps(data))
    with open(root / 'MSRVTT_train.9k.csv', 'w', newline='') as f:
        w = csv.writer(f)
        w.writerows([['video_id'], ['video0'], ['video1'], ['video2']])
    with open(root / 'MSRVTT_JSFUSION_test.csv', 'w', newline='') as f:
        w = csv.writer(f)
        w.writerows([['key', 'vid_key', 'video_id', 'sentence'],
                     ['ret0', 'msr3', 'video3', 'a man, with a comma, sings'],
                     ['ret1', 'msr1', 'video1', 'the 1k-A caption of video1']])
    return root


def test_msrvtt_train_uses_all_sentences_of_split_videos(msrvtt):
    ds = DATASETS.build(dict(type='MSRVTTRetrievalDataset', data_root=str(msrvtt)))
    pairs = [(ds.get_data_info(i)['vid'], ds.get_data_info(i)['captions'][0])
             for i in range(len(ds))]
    assert pairs == [('video0', 'c0 first'), ('video0', 'c0 second'), ('video1', 'c1 only'),
                     ('video2', 'c2 first')]
    assert ds.get_data_info(0)['video_path'] == str(msrvtt / 'videos' / 'video0.mp4')


def test_msrvtt_test_is_jsfusion_one_caption_per_video(msrvtt):
    ds = MSRVTTRetrievalDataset(data_root=str(msrvtt), split='test', test_mode=True,
                                pipeline=pipeline())
    assert len(ds) == 2
    assert [ds.get_data_info(i)['captions'] for i in range(2)] == [
        ['a man, with a comma, sings'], ['the 1k-A caption of video1']]
    item = ds[0]
    assert item['inputs']['text_tokens'].shape[0] == 1
    assert item['data_samples']['caption_ids'] == ['video3#0']


def test_msrvtt_errors(msrvtt):
    with open(msrvtt / 'MSRVTT_train.9k.csv', 'a', newline='') as f:
        csv.writer(f).writerow(['video9'])
    (msrvtt / 'videos' / 'video9.mp4').write_bytes(b'')
    with pytest.raises(AnnotationError, match=r"MSRVTT_data.json: no sentence for 1 video.*"
                                              r"vid='video9'.*MSRVTT_train.9k.csv:5"):
        MSRVTTRetrievalDataset(data_root=str(msrvtt))
    with open(msrvtt / 'bad.csv', 'w') as f:
        f.write('vid\nvideo0\n')
    with pytest.raises(AnnotationError, match=r'bad.csv:1: missing column "video_id"'):
        MSRVTTRetrievalDataset(data_root=str(msrvtt), split_file='bad.csv')
    with open(msrvtt / 'empty_sentence.csv', 'w') as f:
        f.write('key,vid_key,video_id,sentence\nr,m,video0,\n')
    with pytest.raises(AnnotationError, match=r'empty_sentence.csv:2: empty field "sentence" '
                                              r"\(vid='video0'\)"):
        MSRVTTRetrievalDataset(data_root=str(msrvtt), split_file='empty_sentence.csv')
    with pytest.raises(ValueError, match='split'):
        MSRVTTRetrievalDataset(data_root=str(msrvtt), split='val')


# -- MSVD --------------------------------------------------------------------------------

@pytest.fixture
def msvd(tmp_path, mp4):
    root = tmp_path / 'msvd'
    put_videos(mp4, root / 'videos', ['vA.avi', 'vB.avi', 'vC.avi'])
    caps = {'vA': [['a', 'man', 'cooks'], ['someone', 'cooks']],
            'vB': [['a', 'dog', 'runs']],
            'vC': ['already a string', ['two', 'words']]}
    with open(root / 'raw-captions.pkl', 'wb') as f:
        pickle.dump(caps, f)
    (root / 'train_list.txt').write_text('vA\nvB\n')
    (root / 'test_list.txt').write_text('vC\n\n')
    return root


def test_msvd_every_caption_is_a_query(msvd):
    train = DATASETS.build(dict(type='MSVDRetrievalDataset', data_root=str(msvd)))
    assert [train.get_data_info(i)['captions'][0] for i in range(len(train))] == [
        'a man cooks', 'someone cooks', 'a dog runs']
    assert train.get_data_info(0)['video_path'] == str(msvd / 'videos' / 'vA.avi')
    test = MSVDRetrievalDataset(data_root=str(msvd), split='test', test_mode=True)
    assert len(test) == 1
    assert test.get_data_info(0)['captions'] == ['already a string', 'two words']


def test_msvd_errors(msvd):
    (msvd / 'val_list.txt').write_text('vA\nvZ\n')
    with pytest.raises(AnnotationError, match=r"val_list.txt:2: vid 'vZ' has no entry"):
        MSVDRetrievalDataset(data_root=str(msvd), split='val')
    with open(msvd / 'raw-captions.pkl', 'wb') as f:
        pickle.dump({'vA': [['ok'], 5], 'vB': [['x']]}, f)
    with pytest.raises(AnnotationError, match=r"\['vA'\]\[1\].*vid='vA'"):
        MSVDRetrievalDataset(data_root=str(msvd))


# -- DiDeMo ------------------------------------------------------------------------------

@pytest.fixture
def didemo(tmp_path, mp4):
    root = tmp_path / 'didemo'
    put_videos(mp4, root / 'videos', ['1@N0_a.mov', '2@N0_b.mov', '2@N0_b.mp4'])
    recs = [dict(video='1@N0_a.mov', description='a girl waves.', times=[[0, 0]]),
            dict(video='2@N0_b.mov', description='a car passes', times=[[1, 2]]),
            dict(video='1@N0_a.mov', description=' then she jumps ', times=[[3, 3]])]
    (root / 'test_data.json').write_text(json.dumps(recs))
    return root


def test_didemo_descriptions_become_one_paragraph(didemo):
    ds = DATASETS.build(dict(type='DiDeMoRetrievalDataset', data_root=str(didemo),
                             split='test', test_mode=True))
    assert len(ds) == 2
    a = ds.get_data_info(0)
    assert a['vid'] == '1@N0_a.mov' and a['captions'] == ['a girl waves. then she jumps']
    assert a['video_path'] == str(didemo / 'videos' / '1@N0_a.mov')
    mp4_ds = DiDeMoRetrievalDataset(data_root=str(didemo), split='test', video_ext='.mp4',
                                    check_files=False)
    assert mp4_ds.get_data_info(1)['video_path'] == str(didemo / 'videos' / '2@N0_b.mp4')


def test_didemo_errors(didemo):
    (didemo / 'val_data.json').write_text(json.dumps([dict(video='1@N0_a.mov')]))
    with pytest.raises(AnnotationError, match=r'val_data.json\[0\]: field "description".*'
                                              r"vid='1@N0_a.mov'"):
        DiDeMoRetrievalDataset(data_root=str(didemo), split='val')
    (didemo / 'train_data.json').write_text(json.dumps([dict(description='x')]))
    with pytest.raises(AnnotationError, match=r'train_data.json\[0\]: field "video"'):
        DiDeMoRetrievalDataset(data_root=str(didemo), split='train')


def test_train_subset_samples_captions_stratified_by_video_and_records_caption_ids(tmp_path,
                                                                                    mp4):
    root = tmp_path / 'subset'
    put_videos(mp4, root / 'videos', [f'v{i}.mp4' for i in range(4)])
    write_jsonl(root / 'ann.jsonl', [dict(vid=f'v{i}', captions=[f'caption {k} of v{i}'
                                                                  for k in range(4)])
                                     for i in range(4)])
    record = tmp_path / 'work' / 'train_subset.json'
    cfg = dict(type='VideoTextRetrievalDataset', data_root=str(root), ann_file='ann.jsonl',
               video_dir='videos', train_subset=dict(fraction=0.5, seed=2, record=str(record)))
    ds = DATASETS.build(cfg)
    assert len(ds) == 8  # half of the 16 (video, caption) pairs, two per video
    kept = [ds.get_data_info(i)['caption_ids'][0] for i in range(len(ds))]
    saved = json.loads(record.read_text())
    assert saved['id_key'] == 'caption_id' and saved['ids'] == kept
    assert saved['num_items'] == 16 and saved['num_kept'] == 8
    assert {v: len(ids) for v, ids in saved['per_video'].items()} == {f'v{i}': 2
                                                                       for i in range(4)}
    # the caption an item holds is the one its recorded id names
    for i, cid in enumerate(kept):
        vid, k = cid.split('#')
        assert ds.get_data_info(i)['captions'] == [f'caption {k} of {vid}']
    assert [DATASETS.build(cfg).get_data_info(i)['caption_ids'][0] for i in range(8)] == kept
    other = DATASETS.build(dict(cfg, train_subset=dict(fraction=0.5, seed=3)))
    assert [other.get_data_info(i)['caption_ids'][0] for i in range(8)] != kept
