# LoRA on MSR-VTT retrieval: frozen CLIP ViT-B/16, rank-8 LoRA on q, k, v and the output
# projection of every block of both towers. Merge it into the weights for inference with
# model.merge_peft().
#   python tools/train.py configs/lora_msrvtt_retrieval.py
_base_ = ['_base_/models/clip_b16_retriever.py', '_base_/datasets/msrvtt_retrieval.py',
          '_base_/default_runtime.py', '_base_/schedules/adamw_cosine_5ep.py']

_lora = dict(type='LoRA', rank=8, alpha=16)
model = dict(video_backbone=dict(peft=[_lora]), text_backbone=dict(peft=[_lora]))

optim_wrapper = dict(optimizer=dict(lr=1e-4))
default_hooks = dict(checkpoint=dict(save_best='t2v/R@1', rule='greater'))
