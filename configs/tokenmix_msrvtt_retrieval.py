# Token Mixing on MSR-VTT retrieval (the AAAI 2023 paper's setting): frozen CLIP ViT-B/16,
# 8 frames, cross-frame key/value mixing in the last vision block, which is the only part
# of the towers that trains (7,087,872 parameters, the paper's ~7M budget; the learnable
# temperature adds 1).
#   python tools/train.py configs/tokenmix_msrvtt_retrieval.py
#   bash tools/dist_train.sh configs/tokenmix_msrvtt_retrieval.py 8
_base_ = ['_base_/models/clip_b16_retriever.py', '_base_/datasets/msrvtt_retrieval.py',
          '_base_/default_runtime.py', '_base_/schedules/adamw_cosine_5ep.py']

model = dict(video_backbone=dict(peft=[dict(type='TokenMixing', layers=(-1, ), alpha=0.8)]))

# Schedule from the base: AdamW, lr 1e-5, weight decay 0.05, cosine over 5 epochs (the paper).

default_hooks = dict(checkpoint=dict(save_best='t2v/R@1', rule='greater'))
