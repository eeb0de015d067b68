# READ on MSR-VTT retrieval: frozen CLIP ViT-B/16, recurrent adapters (r=32) in the last
# 4 blocks of both towers (over frames in the vision tower, over words in the text tower),
# PVLA between their states. Compare with tokenmix_msrvtt_retrieval.py on the same data.
#   python tools/train.py configs/read_msrvtt_retrieval.py
_base_ = ['_base_/models/clip_b16_retriever.py', '_base_/datasets/msrvtt_retrieval.py',
          '_base_/default_runtime.py', '_base_/schedules/adamw_cosine_5ep.py']

_read = dict(type='READ', layers=(-4, -3, -2, -1), hidden_dim=32, rnn_type='rnn')
model = dict(
    video_backbone=dict(peft=[dict(_read, mode='cls')]),
    text_backbone=dict(peft=[_read]),
    pvla_loss=dict(type='PVLALoss', mass=0.5, eps=0.1, num_iters=100, loss_weight=0.1),
)

optim_wrapper = dict(optimizer=dict(lr=1e-4))
default_hooks = dict(checkpoint=dict(save_best='t2v/R@1', rule='greater'))
