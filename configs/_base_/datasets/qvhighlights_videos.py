# QVHighlights from raw videos: joint moment retrieval and highlight detection (three
# annotators' saliency scores per 2-second clip). data_root is the one knob that points this
# at your copy (the datasets join relative paths to it when they are built):
#   data/qvhighlights/annotations/highlight_{train,val,test}_release.jsonl
#   data/qvhighlights/videos/{vid}.mp4      (e.g. j7rJstUseKg_360.0_510.0.mp4, 150 s cuts)
# The test split has no labels: tools/test.py writes its predictions for the submission
# server (test_evaluator below); tools/eval_moments.py scores val predictions offline.
data_root = 'data/qvhighlights'
image_size = 224

pipeline = [
    dict(type='LoadVideoClips', clip_len=2.0, frames_per_clip=1),
    dict(type='VideoResize', short_side=image_size),
    dict(type='VideoCenterCrop', size=image_size),
    dict(type='FormatVideo'),
    dict(type='CLIPTokenize', model_name='ViT-B-32', context_length=32, trim_padding=True),
    dict(type='PackMomentInputs'),
]
_dataset = dict(type='MomentRetrievalDataset', data_root=data_root, video_dir='videos',
                video_ext='.mp4', pipeline=pipeline)
_loader = dict(num_workers=4, persistent_workers=True,
               collate_fn=dict(type='mmvpeft.video_query_collate'))
train_dataloader = dict(
    batch_size=8, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(_dataset, ann_file='annotations/highlight_train_release.jsonl',
                 skip_corrupt=True), **_loader)
val_dataloader = dict(
    batch_size=8, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(_dataset, ann_file='annotations/highlight_val_release.jsonl', test_mode=True),
    **_loader)
test_dataloader = dict(
    val_dataloader,
    dataset=dict(_dataset, ann_file='annotations/highlight_test_release.jsonl', test_mode=True,
                 require_windows=False))
val_evaluator = [dict(type='MomentRetrievalMetric'), dict(type='HighlightMetric')]
test_evaluator = dict(type='MomentSubmissionDumper', out_file='work_dirs/qvhighlights_test.jsonl')
