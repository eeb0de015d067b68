# READ + PVLA on YouTube Highlights: frozen CLIP ViT-B/32 with recurrent adapters, the domain
# name as the text input, highlight mAP per domain (the paper's headline: 76.12 averaged).
#   python tools/train.py configs/read_youtube.py
_base_ = ['_base_/models/read_b32_grounder.py', '_base_/datasets/youtube_videos.py',
          '_base_/default_runtime.py', '_base_/schedules/adamw_cosine.py']

optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=1e-4))
default_hooks = dict(checkpoint=dict(save_best='HL-mAP', rule='greater'))
