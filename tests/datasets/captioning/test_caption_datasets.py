"""Captioning / summarization layouts: MSR-VTT split, VATEX, How2, chunked context, collate."""
import json
import os.path as osp

import numpy as np
import pytest
import torch

from mmvpeft.datasets import (AnnotationError, How2SummarizationDataset, MSRVTTCaptionDataset,
                              VATEXCaptionDataset, caption_collate)
from mmvpeft.datasets.synthetic import synthetic_summary, synthetic_transcript
from mmvpeft.datasets.transforms import CLIPTokenizeChunks, PackCaptionInputs


def write_msrvtt(root, counts=(5, 2, 3), per_video=20):
    splits = ['train'] * counts[0] + ['validate'] * counts[1] + ['test'] * counts[2]
    videos = [dict(video_id=f'video{i}', split=s) for i, s in enumerate(splits)]
    sentences = [dict(video_id=f'video{i}', caption=f'caption {k} of video {i}', sen_id=0)
                 for i in range(len(splits)) for k in range(per_video)]
    with open(osp.join(root, 'MSRVTT_data.json'), 'w') as f:
        json.dump(dict(videos=videos, sentences=sentences), f)


def test_msrvtt_caption_split_and_items(tmp_path):
    write_msrvtt(tmp_path)
    kw = dict(data_root=str(tmp_path), check_files=False, lazy_init=False)
    train = MSRVTTCaptionDataset(split='train', **kw)
    assert len(train) == 5 * 20  # one item per (video, caption)
    assert train[0]['captions'] == ['caption 0 of video 0']
    val = MSRVTTCaptionDataset(split='val', test_mode=True, **kw)
    test = MSRVTTCaptionDataset(split='test', test_mode=True, **kw)
    assert [d['vid'] for d in val] == ['video5', 'video6']
    assert len(test) == 3 and all(len(d['captions']) == 20 for d in test)
    assert test[0]['video_path'].endswith(osp.join('videos', 'video7.mp4'))


def test_msrvtt_caption_errors_name_the_file(tmp_path):
    with open(tmp_path / 'MSRVTT_data.json', 'w') as f:
        json.dump(dict(videos=[dict(video_id='video0')], sentences=[]), f)
    with pytest.raises(AnnotationError, match=r'MSRVTT_data.json: videos\[0\].*"split"'):
        MSRVTTCaptionDataset(data_root=str(tmp_path), check_files=False)
    with pytest.raises(FileNotFoundError, match='MSRVTT_data.json'):
        MSRVTTCaptionDataset(data_root=str(tmp_path / 'nowhere'), check_files=False)


def test_vatex(tmp_path):
    recs = [dict(videoID='abc_000010_000020', enCap=['a man runs', 'someone jogs'],
                 chCap=['x']), dict(videoID='def_000000_000010', enCap=['a dog barks'])]
    with open(tmp_path / 'vatex_validation_v1.0.json', 'w') as f:
        json.dump(recs, f)
    ds = VATEXCaptionDataset(split='val', data_root=str(tmp_path), check_files=False,
                             test_mode=True)
    assert [(d['vid'], len(d['captions'])) for d in ds] == [('abc_000010_000020', 2),
                                                            ('def_000000_000010', 1)]
    with open(tmp_path / 'bad.json', 'w') as f:
        json.dump([dict(videoID='v1', chCap=['x'])], f)
    with pytest.raises(AnnotationError, match=r'bad.json\[0\]: missing field "enCap".*v1'):
        VATEXCaptionDataset(ann_file='bad.json', data_root=str(tmp_path), check_files=False)


def test_how2_layout(tmp_path):
    d = tmp_path / 'sum_cv'
    d.mkdir()
    (d / 'tran.tok.txt').write_text('vidA hi everyone today we cut an onion\n'
                                    'vidB so the trick is to hold the knife\n')
    (d / 'desc.tok.txt').write_text('vidA learn how to cut an onion .\n'
                                    'vidB knife safety tips .\n')
    ds = How2SummarizationDataset(split='val', data_root=str(tmp_path), check_files=False,
                                  test_mode=True)
    assert [(x['vid'], x['captions'], x['transcript'][:8]) for x in ds] == [
        ('vidA', ['learn how to cut an onion .'], 'hi every'),
        ('vidB', ['knife safety tips .'], 'so the t')]
    assert ds[0]['video_path'].endswith(osp.join('videos', 'vidA.mp4'))
    (d / 'desc.tok.txt').write_text('vidA learn how\nvidC no transcript for me\n')
    with pytest.raises(AnnotationError, match=r"desc.tok.txt:2: video 'vidC' has no transcript"):
        How2SummarizationDataset(split='val', data_root=str(tmp_path), check_files=False)
    (d / 'desc.tok.txt').write_text('vidA\n')
    with pytest.raises(AnnotationError, match=r'desc.tok.txt:1: expected "<video_id> <text>"'):
        How2SummarizationDataset(split='val', data_root=str(tmp_path), check_files=False)


def test_chunked_transcript_covers_the_text_in_order():
    import open_clip
    tok = open_clip.get_tokenizer('ViT-B-32')
    text = synthetic_transcript('train_0001', 'red', 'circle', 'right')
    assert 'red' in text and 'circle' in text and 'right edge' in text
    out = CLIPTokenizeChunks(key='transcript', context_length=16)(dict(transcript=text))
    tokens, mask = out['context_tokens'], out['context_mask']
    ids = tok.encode(text)
    assert tokens.shape[0] == -(-len(ids) // 14) and tokens.shape[1] <= 16
    inner = [t for row, m in zip(tokens, mask) for t in row[m][1:-1].tolist()]
    assert inner == ids  # every token once, in order; each chunk is SOT ... EOT
    assert all(row[m][0] == tok.sot_token_id and row[m][-1] == tok.eot_token_id
               for row, m in zip(tokens, mask))
    assert synthetic_summary('red', 'circle', 'right') == 'a red circle moves to the right'
    with pytest.raises(KeyError, match='transcript.*v9'):
        CLIPTokenizeChunks()(dict(vid='v9'))


def test_collate_pads_chunks():
    pack = PackCaptionInputs()
    items = []
    for n_chunks, vid in ((2, 'a'), (1, 'b')):
        items.append(pack(dict(
            imgs=np.zeros((3, 1, 3, 8, 8), np.uint8), vid=vid, captions=['x'],
            caption_ids=[f'{vid}#0'], text_tokens=np.array([[49406, 5, 49407]]),
            text_mask=np.ones((1, 3), bool),
            context_tokens=np.full((n_chunks, 4), 7), context_mask=np.ones((n_chunks, 4), bool))))
    out = caption_collate(items)['inputs']
    assert out['context_tokens'].shape == (2, 2, 4)
    assert out['context_mask'].tolist()[1] == [[True] * 4, [False] * 4]
    assert torch.equal(out['text_video_index'], torch.tensor([0, 1]))


def test_train_subset_on_captioning(tmp_path):
    write_msrvtt(tmp_path, counts=(5, 2, 3), per_video=4)
    record = tmp_path / 'work' / 'subset.json'
    kw = dict(data_root=str(tmp_path), check_files=False, split='train')
    ds = MSRVTTCaptionDataset(train_subset=dict(count=5, seed=0, record=str(record)), **kw)
    assert len(ds) == 5 and len(MSRVTTCaptionDataset(**kw)) == 20
    saved = json.loads(record.read_text())
    assert saved['ids'] == [ds.get_data_info(i)['caption_ids'][0] for i in range(5)]
    assert saved['num_videos_kept'] == 5  # one caption from each of the 5 training videos
    with pytest.raises(ValueError, match=r'count must be an int in 1..20'):
        MSRVTTCaptionDataset(train_subset=dict(count=21), **kw)
