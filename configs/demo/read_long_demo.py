# The frame model of tools/benchmark_long_video.py: read_demo.py with a recipe that learns
# which shape the query names, for grounding in videos 11x longer than its 16 s training
# videos (configs/demo/read_demo.py keeps the quick demo and its figures).
#   python tools/train.py configs/demo/read_long_demo.py   # about 5 min on 2 CPU cores
#   python tools/benchmark_long_video.py --only frames --frame-config configs/demo/read_long_demo.py
# Changes from read_demo.py (written out here, as configs inherit two levels at most): 192
# synthetic videos (the same generator, so the same colours, shapes, speeds and frame size as
# write_long_shape_video), READ in both blocks of both towers (hidden 32), the encoder's
# inputs standardised per channel (input_norm='batch'), and 60 epochs.
_base_ = ['../_base_/models/tiny_clip.py', '../_base_/default_runtime.py',
          '../_base_/schedules/adamw_cosine.py']

data_root = 'data/demo_read_long'
clip_len = 1.0  # the synthetic events last 2-8 s
max_clips = None  # the 16 s demo videos need none; set it (e.g. 256) for long videos
image_size = {{_base_.image_size}}  # the tiny CLIP's input size
# 64 px: decord mis-sizes mp4v frames whose width is not a multiple of 32 (48 px fails).
generator = dict(num_videos=192, duration=16.0, fps=4, size=(64, 64), val_ratio=0.25)
# The model: the tiny open_clip config of _base_/models/tiny_clip.py (random weights); any
# open_clip ViT config works the same way.
_read = dict(type='READ', layers=(0, 1), hidden_dim=32, rnn_type='rnn')  # in both blocks

model = dict(
    type='MomentGrounder',
    video_backbone=dict(type='CLIPVisionBackbone', model_cfg={{_base_.tiny_clip}},
                        frozen=True, peft=[dict(_read, mode='tokens')]),
    text_backbone=dict(type='CLIPTextBackbone', model_cfg={{_base_.tiny_clip}},
                       frozen=True, peft=[_read]),
    encoder=dict(type='CrossModalEncoder', video_dim=64, text_dim=64, dim=64, num_heads=4,
                 fusion='joint', num_fusion_layers=3, dropout=0.0, input_norm='batch'),
    head=dict(type='DenseMomentHead', in_dim=64, hidden_dim=64,
              loss_cls=dict(type='SigmoidFocalLoss', gamma=0.0, alpha=None),
              loss_reg=dict(type='L1BoundaryLoss', loss_weight=0.2),
              loss_iou=dict(type='GIoU1DLoss', loss_weight=1.0)),
    pvla_loss=dict(type='PVLALoss', mass=0.5, eps=0.1, num_iters=50, loss_weight=0.1),
    pvla_source='backbone',
)

pipeline = [
    dict(type='LoadVideoClips', clip_len=clip_len, frames_per_clip=1, max_clips=max_clips),
    dict(type='VideoResize', short_side=image_size),
    dict(type='VideoCenterCrop', size=image_size),
    dict(type='FormatVideo'),
    dict(type='CLIPTokenize', model_name='ViT-B-32', context_length=16, trim_padding=True),
    dict(type='PackMomentInputs'),
]
# Shared by the loaders. The collate name is scoped: MMEngine's Runner looks collate
# functions up in the root registry.
_loader = dict(num_workers=0, collate_fn=dict(type='mmvpeft.video_query_collate'))
train_dataloader = dict(
    batch_size=16, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='SyntheticVideoMomentDataset', data_root=data_root, split='train',
                 generator=generator, pipeline=pipeline), **_loader)
val_dataloader = dict(
    batch_size=32, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SyntheticVideoMomentDataset', data_root=data_root, split='val',
                 generator=generator, pipeline=pipeline, test_mode=True), **_loader)
test_dataloader = val_dataloader
val_evaluator = dict(type='MomentRetrievalMetric', chance_draws=20)
test_evaluator = val_evaluator

# Longer than read_demo's 30 epochs: in a long video the queried shape competes with a
# dozen distractors, not two, so near misses (blue / cyan) must be rarer.
max_epochs = 60
train_cfg = dict(max_epochs=max_epochs, val_interval=20)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=2,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=2, end=max_epochs, eta_min=1e-6,
         convert_to_iter_based=True),
]
optim_wrapper = dict(optimizer=dict(lr=1e-3))
default_hooks = dict(logger=dict(interval=10),
                     checkpoint=dict(interval=20, save_best='R1@0.5', rule='greater'))
