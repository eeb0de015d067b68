# READ + PVLA on TaCoS with frozen CLIP ViT-L/14 towers: read_tacos.py on the larger backbone
# (24 vision blocks of width 1024 at 14 px patches, 12 text blocks of width 768). READ (r=32)
# in the last 4 blocks of both towers, PVLA, the grounding encoder (input width 768) and
# head train. Both towers use activation checkpointing: at ViT-L/14 a video's frames are
# 257 tokens each, so the adapted blocks' activations dominate memory.
#   python tools/train.py configs/read_tacos_vitl14.py
# CLIP weights: 'openai' downloads through open_clip's hub; offline, point clip_pretrained at
# a local file (OpenAI's weights use QuickGELU: set clip_model_name='ViT-L-14-quickgelu').
_base_ = ['_base_/models/read_b32_grounder.py', '_base_/datasets/tacos_videos.py',
          '_base_/default_runtime.py', '_base_/schedules/adamw_cosine.py']

clip_model_name = 'ViT-L-14'
model = dict(
    video_backbone=dict(model_name=clip_model_name, grad_checkpointing=True),
    text_backbone=dict(model_name=clip_model_name, grad_checkpointing=True),
    encoder=dict(video_dim=768, text_dim=768))
optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=1e-4))
default_hooks = dict(checkpoint=dict(save_best='R1@0.5', rule='greater'))
