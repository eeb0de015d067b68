# The first thing to run: a synthetic moment-retrieval set (generated deterministically into
# data_root on first use, in the public feature layout) and the dense grounding model,
# trained and evaluated on CPU in about two minutes.
#   python tools/train.py configs/demo/grounding_demo.py
_base_ = ['../_base_/default_runtime.py', '../_base_/schedules/adamw_cosine.py']

data_root = 'data/demo_grounding'
video_dim, text_dim = 64, 48  # sizes of the synthetic clip / word features

model = dict(
    type='MomentGrounder',
    encoder=dict(type='CrossModalEncoder', video_dim=video_dim, text_dim=text_dim, dim=64,
                 num_heads=4, fusion='joint', num_fusion_layers=3, dropout=0.0),
    head=dict(type='DenseMomentHead', in_dim=64, hidden_dim=64,
              loss_cls=dict(type='SigmoidFocalLoss', gamma=0.0, alpha=None),
              loss_reg=dict(type='L1BoundaryLoss', loss_weight=0.2),
              loss_iou=dict(type='GIoU1DLoss', loss_weight=1.0)),
    test_cfg=dict(nms_thr=0.7, max_windows=10),
)

pipeline = [
    # Folders relative to the dataset's data_root, joined when the dataset is built.
    dict(type='LoadClipFeatures', feat_dirs='clip_features', clip_len=2.0),
    dict(type='LoadTextFeatures', feat_dir='text_features'),
    dict(type='PackMomentInputs'),
]
# Shared by the loaders. The collate name is scoped: MMEngine's Runner looks collate
# functions up in the root registry.
_loader = dict(num_workers=0, collate_fn=dict(type='mmvpeft.video_query_collate'))
train_dataloader = dict(
    batch_size=32, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='SyntheticMomentDataset', data_root=data_root, split='train',
                 pipeline=pipeline), **_loader)
val_dataloader = dict(
    batch_size=64, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SyntheticMomentDataset', data_root=data_root, split='val',
                 pipeline=pipeline, test_mode=True), **_loader)
test_dataloader = val_dataloader
# Moment retrieval and highlight detection (the head's per-clip saliency against the
# synthetic annotators' scores), each with its chance level.
val_evaluator = [dict(type='MomentRetrievalMetric', chance_draws=20),
                 dict(type='HighlightMetric', chance_draws=20)]
test_evaluator = val_evaluator

max_epochs = 40
train_cfg = dict(max_epochs=max_epochs, val_interval=10)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=2,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=2, end=max_epochs, eta_min=1e-6,
         convert_to_iter_based=True),
]
optim_wrapper = dict(optimizer=dict(lr=1e-3))
default_hooks = dict(logger=dict(interval=10),
                     checkpoint=dict(interval=10, save_best='R1@0.5', rule='greater'))
