# Grounding model on frozen open_clip ViT-B/32 towers with READ (r=32) in the last 4 blocks
# of both, PVLA between their states, a cross-modal encoder and the dense head, whose
# foreground probability per clip is also the highlight (saliency) score. Offline, set
# model.video_backbone.pretrained / model.text_backbone.pretrained to a local file (OpenAI's
# weights use QuickGELU: model_name='ViT-B-32-quickgelu' then). clip_model_name and
# clip_pretrained are knobs: set in a child config or with --cfg-options, they reach both
# towers (e.g. --cfg-options clip_pretrained=checkpoints/ViT-B-32-openai.pt
# clip_model_name=ViT-B-32-quickgelu).
clip_model_name = 'ViT-B-32'
clip_pretrained = 'openai'
_read = dict(type='READ', layers=(-4, -3, -2, -1), hidden_dim=32, rnn_type='rnn')
model = dict(
    type='MomentGrounder',
    video_backbone=dict(type='CLIPVisionBackbone', model_name=clip_model_name,
                        pretrained=clip_pretrained, frozen=True,
                        peft=[dict(_read, mode='tokens')]),
    text_backbone=dict(type='CLIPTextBackbone', model_name=clip_model_name,
                       pretrained=clip_pretrained, frozen=True, peft=[_read]),
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
