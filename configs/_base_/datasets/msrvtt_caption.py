# MSR-VTT captioning: the standard 6,513 / 497 / 2,990 split of MSRVTT_data.json, 20
# captions per video (training: every (video, caption) pair; test: one item per video with
# its 20 references). data_root is the one knob:
#   data/msrvtt/MSRVTT_data.json   data/msrvtt/videos/video0.mp4 ...
# MSVD (raw-captions.pkl + {train,val,test}_list.txt) and VATEX
# (vatex_{training,validation}_v1.0.json) read the same way: set dataset type to
# 'MSVDRetrievalDataset' (with split=...) or 'VATEXCaptionDataset'.
data_root = 'data/msrvtt'
num_frames = 8
image_size = 224

train_pipeline = [
    dict(type='LoadVideoFrames', num_frames=num_frames, sampling='random'),
    dict(type='VideoResize', short_side=image_size),
    dict(type='VideoCenterCrop', size=image_size),
    dict(type='FormatVideo'),
    dict(type='CLIPTokenize', key='captions', multi=True, context_length=32,
         trim_padding=True),
    dict(type='PackCaptionInputs'),
]
test_pipeline = [dict(t, sampling='uniform') if t['type'] == 'LoadVideoFrames' else t
                 for t in train_pipeline]
_loader = dict(num_workers=4, persistent_workers=True,
               collate_fn=dict(type='mmvpeft.video_captions_collate'))
train_dataloader = dict(
    batch_size=32, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='MSRVTTCaptionDataset', data_root=data_root, split='train',
                 pipeline=train_pipeline, skip_corrupt=True), **_loader)
val_dataloader = dict(
    batch_size=16, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='MSRVTTCaptionDataset', data_root=data_root, split='val',
                 pipeline=test_pipeline, test_mode=True), **_loader)
test_dataloader = dict(
    batch_size=16, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='MSRVTTCaptionDataset', data_root=data_root, split='test',
                 pipeline=test_pipeline, test_mode=True), **_loader)
val_evaluator = dict(type='CaptionMetric')  # BLEU-1..4, METEOR, ROUGE_L, CIDEr
test_evaluator = val_evaluator
