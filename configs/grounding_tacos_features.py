# Dense moment retrieval on TaCoS from CLIP + SlowFast clip features and CLIP text features.
#   python tools/train.py configs/grounding_tacos_features.py
#   python tools/test.py configs/grounding_tacos_features.py work_dirs/.../best_R1@0.5_*.pth
# Everything here trains (the features are fixed inputs): no backbone in the loop.
_base_ = ['_base_/datasets/tacos_features.py', '_base_/default_runtime.py',
          '_base_/schedules/adamw_cosine.py']

model = dict(
    type='MomentGrounder',
    encoder=dict(type='CrossModalEncoder', video_dim={{_base_.video_dim}},
                 text_dim={{_base_.text_dim}}, dim=256, num_heads=8, fusion='joint',
                 num_fusion_layers=3, dropout=0.1),
    head=dict(type='DenseMomentHead', in_dim=256, hidden_dim=256,
              loss_cls=dict(type='SigmoidFocalLoss', gamma=0.0, alpha=None),
              loss_reg=dict(type='L1BoundaryLoss', loss_weight=0.2),
              loss_iou=dict(type='GIoU1DLoss', loss_weight=1.0)),
    test_cfg=dict(nms_thr=0.7, max_windows=10),
)
default_hooks = dict(checkpoint=dict(save_best='R1@0.5', rule='greater'))
