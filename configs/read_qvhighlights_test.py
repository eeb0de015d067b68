# READ + PVLA on QVHighlights, scored on the TEST split. The evaluation server is gone; the
# dataset's authors released the test ground truth (highlight_test_with_gt.jsonl, 1,541
# queries, CC BY-NC-SA 4.0; see docs/evaluation.md). Put it beside the other annotation files:
#   data/qvhighlights/annotations/highlight_test_with_gt.jsonl
# then
#   python tools/test.py configs/read_qvhighlights_test.py CKPT         # metrics + submission
#   python tools/eval_moments.py PRED.jsonl \
#       --gt data/qvhighlights/annotations/highlight_test_with_gt.jsonl  # any model's file
# Model, data and training are read_qvhighlights.py's (same bases, same settings); only what
# tools/test.py scores changes.
_base_ = ['_base_/models/read_b32_grounder.py', '_base_/datasets/qvhighlights_videos.py',
          '_base_/default_runtime.py', '_base_/schedules/adamw_cosine.py']

optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=1e-4))
default_hooks = dict(checkpoint=dict(save_best='mAP', rule='greater'))

test_ann_file = 'annotations/highlight_test_with_gt.jsonl'
test_dataloader = dict(dataset=dict(ann_file=test_ann_file, require_windows=True))
# moment_detr's MR and HD metrics on the labelled test split, and the submission file
# (the same format tools/eval_moments.py reads).
test_evaluator = [dict(type='MomentRetrievalMetric'), dict(type='HighlightMetric'),
                  dict(type='MomentSubmissionDumper',
                       out_file='work_dirs/qvhighlights_test_with_gt.jsonl')]
