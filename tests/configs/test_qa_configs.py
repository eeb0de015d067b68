"""configs/tokenmix_msrvtt_qa.py: the paper's budget at ViT-B/16, and a training step plus
``test.py --dump`` through the real tools on a tiny MSRVTT-QA layout (tiny-model override)."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmvpeft.datasets.synthetic import write_video
from mmvpeft.registry import MODELS
from mmvpeft.utils import parameter_report

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO_ROOT, 'configs', 'tokenmix_msrvtt_qa.py')


def write_msrvtt_qa(root):
    """3 videos, 12 train / 3 val / 3 test questions in the released MSRVTT-QA layout."""
    (root / 'videos').mkdir(parents=True)
    rng = np.random.default_rng(0)
    for n in range(3):
        frames = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(4)]
        write_video(str(root / 'videos' / f'video{n}.mp4'), frames, 4.0, (32, 32))
    answers = ['man', 'dog', 'cook', 'man']
    train = [dict(question=f'{w} is it {k}?', answer=answers[k % 4], video_id=k % 2, id=k)
             for k, w in enumerate(['who', 'what', 'how'] * 4)]
    (root / 'train_qa.json').write_text(json.dumps(train))
    for split, first in (('val', 100), ('test', 200)):
        qa = [dict(question='who is it?', answer='man', video_id=2, id=first),
              dict(question='what is it?', answer='unicycle', video_id=2, id=first + 1),
              dict(question='what runs?', answer='dog', video_id='video2', id=first + 2)]
        (root / f'{split}_qa.json').write_text(json.dumps(qa))


def test_tokenmix_qa_trains_the_last_block_at_the_papers_budget(tmp_path):
    """Built with no data at all: the head's size is the config's num_answers."""
    init_default_scope('mmvpeft')
    cfg = Config.fromfile(CONFIG)
    for key in ('video_backbone', 'text_backbone'):
        cfg.model[key].pretrained = None  # no hub here: random weights
    cfg.model.answer_vocab.data_root = str(tmp_path)
    model = MODELS.build(cfg.model)
    rows, table = parameter_report(model)
    tower = {n: p.numel() for n, p in model.named_parameters()
             if p.requires_grad and n.startswith(('video_backbone', 'text_backbone'))}
    assert all(n.startswith('video_backbone.visual.transformer.resblocks.11.') for n in tower)
    assert sum(tower.values()) == 7_087_872
    assert '[video_backbone: TokenMixing(layers=[11])]' in table
    by_group = {name: trainable for name, trainable, _ in rows}
    assert by_group['video_backbone'] == 7_087_872
    assert by_group['total'] == 7_087_872 + by_group['fusion'] + by_group['head']
    assert model.head.num_answers == 1500 and model.answers is None  # no file yet
    assert not (tmp_path / 'answer_vocab_top1500.json').exists()  # nothing read or written


def test_tokenmix_qa_trains_a_step_and_dumps_answers(tmp_path, load_tool):
    data = tmp_path / 'data'
    write_msrvtt_qa(data)
    tiny = dict(embed_dim=32, vision_cfg=dict(image_size=32, patch_size=16, width=32,
                                              layers=2, head_width=16),
                text_cfg=dict(context_length=40, width=32, heads=2, layers=1))
    pipeline = ("[dict(type='LoadVideoFrames', num_frames=4), "
                "dict(type='VideoResize', short_side=32), dict(type='VideoCenterCrop', size=32),"
                " dict(type='FormatVideo'), dict(type='CLIPTokenize', key='question', "
                "context_length=40, trim_padding=True), dict(type='PackQAInputs')]")
    loaders = '\n'.join(
        f"{split}_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False, "
        f"dataset=dict(data_root={str(data)!r}, pipeline={pipeline}))"
        for split in ('train', 'val', 'test'))
    config = tmp_path / 'tiny_qa.py'
    config.write_text(
        f"_base_ = [{CONFIG!r}]\n"
        f"_tiny = {tiny!r}\n"
        "model = dict(video_backbone=dict(model_cfg=_tiny, pretrained=None),\n"
        "             text_backbone=dict(model_cfg=_tiny, pretrained=None),\n"
        f"             num_answers=3, answer_vocab=dict(data_root={str(data)!r}),\n"
        "             fusion=dict(dim=32, num_heads=2), head=dict(hidden_dim=32))\n"
        f"{loaders}\n"
        "train_cfg = dict(max_epochs=1)\n")
    work = str(tmp_path / 'work')
    torch.manual_seed(0)
    load_tool('train').main([str(config), '--work-dir', work])
    ckpt = torch.load(osp.join(work, 'epoch_1.pth'), map_location='cpu', weights_only=True)
    keys = set(ckpt['state_dict'])
    assert 'head.vocab_digest' in keys and any(k.startswith('fusion.') for k in keys)
    assert all(k.startswith(('head.', 'fusion.', 'video_backbone.visual.transformer.'
                             'resblocks.1.')) for k in keys)
    # The dataset wrote the file (man, cook, dog: fewer than top_k=1500 exist); the model
    # read it on its first step and recorded its digest with the weights.
    vocab = json.loads((data / 'answer_vocab_top1500.json').read_text())
    assert vocab['answers'] == ['man', 'cook', 'dog'] and vocab['top_k'] == 1500
    assert bytes(ckpt['state_dict']['head.vocab_digest'].tolist()).hex() == vocab['sha256']
    answers = tmp_path / 'answers.jsonl'
    torch.manual_seed(0)
    metrics = load_tool('test').main([str(config), osp.join(work, 'epoch_1.pth'), '--work-dir',
                                      work, '--dump', str(answers)])
    lines = [json.loads(line) for line in answers.read_text().splitlines()]
    assert [(r['qid'], r['vid'], r['question'], r['answer']) for r in lines] == [
        (200, 'video2', 'who is it?', 'man'), (201, 'video2', 'what is it?', 'unicycle'),
        (202, 'video2', 'what runs?', 'dog')]
    assert all(r['pred_answer'] in vocab['answers'] for r in lines)
    # The dump and the metric agree; the unicycle question can never be right.
    hits = [r['pred_answer'] == r['answer'] for r in lines]
    assert metrics['acc'] == sum(hits) / 3 * 100 and not hits[1]
    assert metrics['in_vocab'] == 200 / 3


def test_qa_as_generation_trains_a_step_and_dumps_decoded_answers(tmp_path, load_tool):
    """configs/tokenmix_msrvtt_qa_generation.py: the question is the decoder's context, the
    answer its target; the same metric and dump as the classifier, no vocabulary."""
    data = tmp_path / 'data'
    write_msrvtt_qa(data)
    tiny = dict(embed_dim=32, vision_cfg=dict(image_size=32, patch_size=16, width=32,
                                              layers=2, head_width=16),
                text_cfg=dict(context_length=16, width=32, heads=2, layers=1))
    decoder = dict(width=32, heads=2, layers=2, vocab_size=49408, context_length=16)
    pipeline = ("[dict(type='LoadVideoFrames', num_frames=4), "
                "dict(type='VideoResize', short_side=32), dict(type='VideoCenterCrop', size=32),"
                " dict(type='FormatVideo'), dict(type='CLIPTokenizeChunks', key='question', "
                "context_length=16, max_chunks=1), dict(type='CLIPTokenize', key='answer', "
                "context_length=8, trim_padding=True), dict(type='PackQAInputs')]")
    loaders = '\n'.join(
        f"{split}_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False, "
        f"dataset=dict(data_root={str(data)!r}, pipeline={pipeline}))"
        for split in ('train', 'val', 'test'))
    config = tmp_path / 'tiny_qa_generation.py'
    config.write_text(
        f"_base_ = [{osp.join(REPO_ROOT, 'configs', 'tokenmix_msrvtt_qa_generation.py')!r}]\n"
        f"_tiny = {tiny!r}\n"
        "model = dict(video_backbone=dict(model_cfg=_tiny, pretrained=None),\n"
        "             text_backbone=dict(model_cfg=_tiny, pretrained=None),\n"
        f"             decoder=dict(model_cfg={decoder!r}, pretrained=None, max_frames=4,\n"
        "                          vocab_texts=['man dog cook unicycle']))\n"
        f"{loaders}\n"
        "train_cfg = dict(max_epochs=1)\n")
    work = str(tmp_path / 'work')
    torch.manual_seed(0)
    load_tool('train').main([str(config), '--work-dir', work])
    keys = set(torch.load(osp.join(work, 'epoch_1.pth'), map_location='cpu',
                          weights_only=True)['state_dict'])
    assert any('.resblocks.1.' in k for k in keys if k.startswith('video_backbone.'))
    assert any('read_adapter' in k for k in keys if k.startswith('decoder.'))
    assert not [k for k in keys if k.startswith('text_backbone.')]  # frozen, nothing trains
    assert not (data / 'answer_vocab_top1500.json').exists()  # generation needs no vocabulary
    answers = tmp_path / 'answers.jsonl'
    metrics = load_tool('test').main([str(config), osp.join(work, 'epoch_1.pth'), '--work-dir',
                                      work, '--dump', str(answers)])
    lines = [json.loads(line) for line in answers.read_text().splitlines()]
    assert [(r['qid'], r['question'], r['answer']) for r in lines] == [
        (200, 'who is it?', 'man'), (201, 'what is it?', 'unicycle'), (202, 'what runs?', 'dog')]
    assert all(isinstance(r['pred_answer'], str) for r in lines)
    hits = [r['pred_answer'] == r['answer'] for r in lines]
    assert metrics['acc'] == pytest.approx(sum(hits) / 3 * 100)
