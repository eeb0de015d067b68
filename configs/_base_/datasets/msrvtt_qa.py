# MSRVTT-QA open-ended video QA (train_qa.json / val_qa.json / test_qa.json) on the MSR-VTT
# videos, 8 frames per video, the question through the CLIP tokenizer. The answer vocabulary
# is the 1,500 most frequent training answers, built from train_qa.json on first use and
# saved beside it, so every split and process labels answers alike. data_root is the one
# knob (the datasets join relative paths to it; the model's answer_vocab.file too):
#   data/msrvtt_qa/train_qa.json  val_qa.json  test_qa.json
#   data/msrvtt_qa/videos/video0.mp4 ...
data_root = 'data/msrvtt_qa'
num_frames = 8
image_size = 224
answer_vocab = dict(source='train_qa.json', top_k=1500, file='answer_vocab_top1500.json')

train_pipeline = [
    dict(type='LoadVideoFrames', num_frames=num_frames, sampling='random'),
    dict(type='VideoResize', short_side=image_size),
    dict(type='VideoCenterCrop', size=image_size),
    dict(type='FormatVideo'),
    dict(type='CLIPTokenize', key='question', context_length=40, trim_padding=True),
    dict(type='PackQAInputs'),
]
test_pipeline = [dict(t, sampling='uniform') if t['type'] == 'LoadVideoFrames' else t
                 for t in train_pipeline]
_loader = dict(num_workers=4, persistent_workers=True,
               collate_fn=dict(type='mmvpeft.video_query_collate'))
train_dataloader = dict(
    batch_size=32, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='MSRVTTQADataset', data_root=data_root, split='train',
                 answer_vocab=answer_vocab, pipeline=train_pipeline, skip_corrupt=True),
    **_loader)
val_dataloader = dict(
    batch_size=32, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='MSRVTTQADataset', data_root=data_root, split='val',
                 answer_vocab=answer_vocab, pipeline=test_pipeline, test_mode=True),
    **_loader)
test_dataloader = dict(
    val_dataloader,
    dataset=dict(val_dataloader['dataset'], split='test'))
val_evaluator = dict(type='QAAccuracyMetric')
test_evaluator = val_evaluator
