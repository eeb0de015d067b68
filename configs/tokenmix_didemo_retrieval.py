# Token Mixing on DiDeMo paragraph-to-video retrieval (as in the Token Mixing paper and
# CLIP4Clip): each video's moment descriptions are joined into one paragraph, its only
# caption, and the first 31 s of the video are read. CLIP4Clip layout:
#   data/didemo/{train,val,test}_data.json
#   data/didemo/videos/{video file name}
# With one (paragraph) caption per video both v2t protocols reduce to the diagonal one; the
# evaluator names CLIP4Clip's protocol, the one of the published DiDeMo figures.
#   python tools/train.py configs/tokenmix_didemo_retrieval.py
# Model and schedule as tokenmix_msrvtt_retrieval.py; the dataset base is MSR-VTT's loaders
# with the dataset swapped below.
_base_ = ['_base_/models/clip_b16_retriever.py', '_base_/datasets/msrvtt_retrieval.py',
          '_base_/default_runtime.py', '_base_/schedules/adamw_cosine_5ep.py']

model = dict(video_backbone=dict(peft=[dict(type='TokenMixing', layers=(-1, ), alpha=0.8)]))
default_hooks = dict(checkpoint=dict(save_best='t2v/R@1', rule='greater'))

data_root = 'data/didemo'
num_frames = 8
image_size = 224
train_pipeline = [
    dict(type='LoadVideoFrames', num_frames=num_frames, sampling='random', max_duration=31),
    dict(type='VideoResize', short_side=image_size),
    dict(type='VideoCenterCrop', size=image_size),
    dict(type='FormatVideo'),
    # paragraphs are long: CLIP's full 77-token context
    dict(type='CLIPTokenize', key='captions', multi=True, context_length=77,
         trim_padding=True),
    dict(type='PackRetrievalInputs'),
]
test_pipeline = [dict(t, sampling='uniform') if t['type'] == 'LoadVideoFrames' else t
                 for t in train_pipeline]
_didemo = dict(type='DiDeMoRetrievalDataset', data_root=data_root)
train_dataloader = dict(dataset=dict(_didemo, split='train', pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(_didemo, split='val', pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(_didemo, split='test', pipeline=test_pipeline))
val_evaluator = dict(type='RetrievalMetric', protocol='clip4clip')
test_evaluator = val_evaluator
