# Token Mixing on MSR-VTT retrieval (the AAAI 2023 paper's setting): frozen CLIP ViT-B/16,
# 8 frames, cross-frame key/value mixing in the last vision block, which is the only part
# of the towers that trains (7,087,872 parameters, the paper's ~7M budget; the learnable
# temperature adds 1).
#   python tools/train.py configs/tokenmix_msrvtt_retrieval.py
#   bash tools/dist_train.sh configs/tokenmix_msrvtt_retrieval.py 8
_base_ = ['_base_/models/clip_b16_retriever.py', '_base_/datasets/msrvtt_retrieval.py',
          '_base_/default_runtime.py', '_base_/schedules/adamw_cosine.py']

model = dict(video_backbone=dict(peft=[dict(type='TokenMixing', layers=(-1, ), alpha=0.8)]))

# AdamW, weight decay 0.05, lr 1e-5, cosine decay over 5 epochs (methods.md section 1).
max_epochs = 5
train_cfg = dict(max_epochs=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=1e-5, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=max_epochs, eta_min=0,
         convert_to_iter_based=True),
]
default_hooks = dict(checkpoint=dict(save_best='t2v/R@1', rule='greater'))
