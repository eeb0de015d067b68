# READ + PVLA on QVHighlights: frozen CLIP ViT-B/32, recurrent adapters in the last 4 blocks
# of both towers, joint moment retrieval (windows) and highlight detection (the head's
# per-clip saliency), evaluated with moment_detr's metrics.
#   python tools/train.py configs/read_qvhighlights.py
#   python tools/test.py configs/read_qvhighlights.py CKPT    # writes the test submission
#   python tools/eval_moments.py --gt GT.jsonl --pred PRED.jsonl   # offline val scores
_base_ = ['_base_/models/read_b32_grounder.py', '_base_/datasets/qvhighlights_videos.py',
          '_base_/default_runtime.py', '_base_/schedules/adamw_cosine.py']

optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=1e-4))
default_hooks = dict(checkpoint=dict(save_best='mAP', rule='greater'))
