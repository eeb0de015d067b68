# MSR-VTT text-video retrieval in the CLIP4Clip layout: 9k train videos (every caption a
# training pair), the 1k-A test (one caption per video). data_root is the one knob that
# points this at your copy (the datasets join relative paths to it when they are built):
#   data/msrvtt/MSRVTT_data.json  MSRVTT_train.9k.csv  MSRVTT_JSFUSION_test.csv
#   data/msrvtt/videos/video0.mp4 ...
data_root = 'data/msrvtt'
num_frames = 8  # the Token Mixing setting (CLIP4Clip uses 12)
image_size = 224

train_pipeline = [
    dict(type='LoadVideoFrames', num_frames=num_frames, sampling='random'),
    dict(type='VideoResize', short_side=image_size),
    dict(type='VideoCenterCrop', size=image_size),
    dict(type='FormatVideo'),
    dict(type='CLIPTokenize', key='captions', multi=True, context_length=32,
         trim_padding=True),
    dict(type='PackRetrievalInputs'),
]
test_pipeline = [dict(t, sampling='uniform') if t['type'] == 'LoadVideoFrames' else t
                 for t in train_pipeline]
_loader = dict(num_workers=4, persistent_workers=True,
               collate_fn=dict(type='mmvpeft.video_captions_collate'))
train_dataloader = dict(
    batch_size=32, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='MSRVTTRetrievalDataset', data_root=data_root, split='train',
                 pipeline=train_pipeline, skip_corrupt=True), **_loader)
val_dataloader = dict(
    batch_size=16, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='MSRVTTRetrievalDataset', data_root=data_root, split='test',
                 pipeline=test_pipeline, test_mode=True), **_loader)
test_dataloader = val_dataloader
val_evaluator = dict(type='RetrievalMetric')
test_evaluator = val_evaluator
