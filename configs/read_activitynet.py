# READ + PVLA on ActivityNet Captions temporal grounding (one of the READ paper's grounding
# benchmarks): frozen CLIP ViT-B/32, recurrent adapters (r=32, RNN) in the last 4 blocks of
# both towers, PVLA between their states, the cross-modal encoder and the dense head; the
# same settings as read_tacos.py / read_qvhighlights.py.
# Data: _base_/datasets/activitynet_videos.py (layout, splits and protocol there).
#   python tools/train.py configs/read_activitynet.py
_base_ = ['_base_/models/read_b32_grounder.py', '_base_/datasets/activitynet_videos.py',
          '_base_/default_runtime.py', '_base_/schedules/adamw_cosine.py']

optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=1e-4))
default_hooks = dict(checkpoint=dict(save_best='R1@0.5', rule='greater'))
