# READ + PVLA on QVHighlights, scored on the TEST split. The evaluation server is gone; the
# dataset's authors released the test ground truth (highlight_test_with_gt.jsonl, 1,541
# queries, CC BY-NC-SA 4.0; see docs/evaluation.md). Put it beside the other annotation files:
#   data/qvhighlights/annotations/highlight_test_with_gt.jsonl
# then
#   python tools/test.py configs/read_qvhighlights_test.py CKPT         # metrics + submission
#   python tools/eval_moments.py PRED.jsonl \
#       --gt data/qvhighlights/annotations/highlight_test_with_gt.jsonl  # any model's file
# Training is read_qvhighlights.py's (this file only changes what tools/test.py scores).
_base_ = ['read_qvhighlights.py']

test_ann_file = 'annotations/highlight_test_with_gt.jsonl'
test_dataloader = dict(dataset=dict(ann_file=test_ann_file, require_windows=True))
# moment_detr's MR and HD metrics on the labelled test split, and the submission file
# (the same format tools/eval_moments.py reads).
test_evaluator = [dict(type='MomentRetrievalMetric'), dict(type='HighlightMetric'),
                  dict(type='MomentSubmissionDumper',
                       out_file='work_dirs/qvhighlights_test_with_gt.jsonl')]
