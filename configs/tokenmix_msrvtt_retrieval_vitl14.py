# Token Mixing on MSR-VTT retrieval with frozen CLIP ViT-L/14 towers: tokenmix_msrvtt_retrieval.py
# on the larger backbone. Cross-frame key/value mixing in the last of the 24 vision blocks,
# which is the only part of the towers that trains (12.6M parameters); 8 frames, mean pooling,
# symmetric InfoNCE. The vision tower uses activation checkpointing (the trained block keeps
# only its input for backward).
#   python tools/train.py configs/tokenmix_msrvtt_retrieval_vitl14.py
# CLIP weights: 'openai' through open_clip's hub; offline, set model.video_backbone.pretrained
# and model.text_backbone.pretrained to a local file and model_name to 'ViT-L-14-quickgelu'.
_base_ = ['_base_/models/clip_b16_retriever.py', '_base_/datasets/msrvtt_retrieval.py',
          '_base_/default_runtime.py', '_base_/schedules/adamw_cosine_5ep.py']

model = dict(
    video_backbone=dict(model_name='ViT-L-14', grad_checkpointing=True,
                        peft=[dict(type='TokenMixing', layers=(-1, ), alpha=0.8)]),
    text_backbone=dict(model_name='ViT-L-14'))

default_hooks = dict(checkpoint=dict(save_best='t2v/R@1', rule='greater'))
