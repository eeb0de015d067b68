# READ + PVLA on TaCoS: a frozen CLIP ViT-B/32 transferred to temporal grounding by training
# only recurrent adapters (in the last 4 blocks of both towers) and the grounding head.
#   python tools/train.py configs/read_tacos.py
#   bash tools/dist_train.sh configs/read_tacos.py 8
# CLIP weights: 'openai' downloads through open_clip's hub; offline, point clip_pretrained at
# a local file (e.g. --cfg-options clip_pretrained=checkpoints/ViT-B-32-openai.pt). OpenAI's
# weights use QuickGELU: with a local file of them set clip_model_name='ViT-B-32-quickgelu'.
_base_ = ['_base_/datasets/tacos_videos.py', '_base_/default_runtime.py',
          '_base_/schedules/adamw_cosine.py']

clip_model_name = 'ViT-B-32'
clip_pretrained = 'openai'
adapter = dict(type='ReadAdapter', hidden_dim=32, rnn_type='rnn', bidirectional=False)
adapter_layers = (-4, -3, -2, -1)

model = dict(
    type='MomentGrounder',
    video_backbone=dict(type='CLIPVisionBackbone', model_name=clip_model_name,
                        pretrained=clip_pretrained, frozen=True, adapter=adapter,
                        adapter_layers=adapter_layers, adapter_mode='tokens'),
    text_backbone=dict(type='CLIPTextBackbone', model_name=clip_model_name,
                       pretrained=clip_pretrained, frozen=True, adapter=adapter,
                       adapter_layers=adapter_layers),
    encoder=dict(type='CrossModalEncoder', video_dim=512, text_dim=512, dim=256, num_heads=8,
                 fusion='joint', num_fusion_layers=3, dropout=0.1),
    head=dict(type='DenseMomentHead', in_dim=256, hidden_dim=256,
              loss_cls=dict(type='SigmoidFocalLoss', gamma=0.0, alpha=None),
              loss_reg=dict(type='L1BoundaryLoss', loss_weight=0.2),
              loss_iou=dict(type='GIoU1DLoss', loss_weight=1.0)),
    # Partial OT between the last adapted layer's video (per clip) and text (per word)
    # states; the plan moves half the mass (mass=0.5), entropic regulariser eps.
    pvla_loss=dict(type='PVLALoss', mass=0.5, eps=0.1, cost='sqeuclidean', num_iters=100,
                   loss_weight=0.1),
    pvla_source='backbone',
    save_trainable_only=True,  # checkpoints keep adapters + head, not the frozen CLIP
    test_cfg=dict(nms_thr=0.7, max_windows=10),
)
optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=1e-4))
default_hooks = dict(checkpoint=dict(save_best='R1@0.5', rule='greater'))
