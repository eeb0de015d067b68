# Text-video retrieval with Token Mixing on CPU in about two minutes: synthetic mp4s of one
# coloured shape moving in one direction (written with opencv on first use), captioned by
# what is drawn ("a red circle moves to the right"), decoded with decord; a tiny random CLIP
# whose vision tower mixes tokens across frames in its last block (which trains), and a
# frozen text tower with READ over words.
#   python tools/train.py configs/demo/retrieval_demo.py
#   python tools/test.py configs/demo/retrieval_demo.py none   # the untrained model
_base_ = ['../_base_/models/tiny_clip.py', '../_base_/default_runtime.py',
          '../_base_/schedules/adamw_cosine.py']

data_root = 'data/demo_retrieval'
image_size = {{_base_.image_size}}  # the tiny CLIP's input size
num_frames = 8
generator = dict(num_train=120, num_val=24, duration=4.0, fps=4, size=(64, 64))

model = dict(
    type='VideoTextRetriever',
    video_backbone=dict(type='CLIPVisionBackbone', model_cfg={{_base_.tiny_clip}},
                        frozen=True,
                        peft=[dict(type='TokenMixing', layers=(-1, ), alpha=0.8)]),
    text_backbone=dict(type='CLIPTextBackbone', model_cfg={{_base_.tiny_clip}},
                       frozen=True,
                       peft=[dict(type='READ', layers=(-1, ), hidden_dim=16)]),
    temporal_pool=dict(type='TemporalPool', mode='mean'),
    loss=dict(type='SymmetricInfoNCELoss'),
    logit_scale_init=10.0,
)

train_pipeline = [
    dict(type='LoadVideoFrames', num_frames=num_frames, sampling='random'),
    dict(type='VideoResize', short_side=image_size),
    dict(type='VideoCenterCrop', size=image_size),
    dict(type='FormatVideo'),
    dict(type='CLIPTokenize', key='captions', multi=True, context_length=16,
         trim_padding=True),
    dict(type='PackRetrievalInputs'),
]
test_pipeline = [dict(t, sampling='uniform') if t['type'] == 'LoadVideoFrames' else t
                 for t in train_pipeline]
_loader = dict(num_workers=0, collate_fn=dict(type='mmvpeft.video_captions_collate'))
train_dataloader = dict(
    batch_size=24, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='SyntheticRetrievalDataset', data_root=data_root, split='train',
                 generator=generator, pipeline=train_pipeline), **_loader)
val_dataloader = dict(
    batch_size=24, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SyntheticRetrievalDataset', data_root=data_root, split='val',
                 generator=generator, pipeline=test_pipeline, test_mode=True), **_loader)
test_dataloader = val_dataloader
val_evaluator = dict(type='RetrievalMetric')
test_evaluator = val_evaluator

max_epochs = 20
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=2,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=2, end=max_epochs, eta_min=1e-6,
         convert_to_iter_based=True),
]
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.05))
default_hooks = dict(logger=dict(interval=5),
                     checkpoint=dict(interval=5, save_best='t2v/R@1', rule='greater'))
