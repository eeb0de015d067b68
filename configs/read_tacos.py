# READ + PVLA on TaCoS: a frozen CLIP ViT-B/32 transferred to temporal grounding by training
# only recurrent adapters (in the last 4 blocks of both towers) and the grounding head.
# The model is _base_/models/read_b32_grounder.py (READ r=32, PVLA, the dense head).
#   python tools/train.py configs/read_tacos.py
#   bash tools/dist_train.sh configs/read_tacos.py 8
# CLIP weights: 'openai' downloads through open_clip's hub; offline, point clip_pretrained at
# a local file (e.g. --cfg-options clip_pretrained=checkpoints/ViT-B-32-openai.pt). OpenAI's
# weights use QuickGELU: with a local file of them set clip_model_name='ViT-B-32-quickgelu'.
_base_ = ['_base_/models/read_b32_grounder.py', '_base_/datasets/tacos_videos.py',
          '_base_/default_runtime.py', '_base_/schedules/adamw_cosine.py']

optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=1e-4))
default_hooks = dict(checkpoint=dict(save_best='R1@0.5', rule='greater'))
