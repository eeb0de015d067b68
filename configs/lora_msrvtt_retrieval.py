# LoRA on MSR-VTT retrieval: frozen CLIP ViT-B/16, rank-8 LoRA on q, k, v and the output
# projection of every block of both towers. Merge it into the weights for inference with
# model.merge_peft().
#   python tools/train.py configs/lora_msrvtt_retrieval.py
_base_ = ['_base_/models/clip_b16_retriever.py', '_base_/datasets/msrvtt_retrieval.py',
          '_base_/default_runtime.py', '_base_/schedules/adamw_cosine.py']

_lora = dict(type='LoRA', rank=8, alpha=16)
model = dict(video_backbone=dict(peft=[_lora]), text_backbone=dict(peft=[_lora]))

max_epochs = 5
train_cfg = dict(max_epochs=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=max_epochs, eta_min=0,
         convert_to_iter_based=True),
]
default_hooks = dict(checkpoint=dict(save_best='t2v/R@1', rule='greater'))
