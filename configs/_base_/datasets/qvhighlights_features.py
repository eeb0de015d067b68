# QVHighlights from CLIP features in the public layout (moment_detr / line-lighthouse), or
# what tools/extract_features.py writes for your own videos. data_root is the one knob
# (the datasets join the relative paths below to it when they are built):
#   data/qvhighlights/annotations/highlight_{train,val,test}_release.jsonl
#   data/qvhighlights/clip_features/{vid}.npz          ['features']          (T, 512), 2 s
#   data/qvhighlights/clip_text_features/qid{qid}.npz  ['last_hidden_state'] (L, 512)
data_root = 'data/qvhighlights'
video_dim, text_dim = 512, 512  # CLIP ViT-B/32 (image embedding, text width)

pipeline = [
    dict(type='LoadClipFeatures', feat_dirs='clip_features', clip_len=2.0),
    dict(type='LoadTextFeatures', feat_dir='clip_text_features', max_len=32),
    dict(type='PackMomentInputs'),
]
_dataset = dict(type='MomentRetrievalDataset', data_root=data_root, pipeline=pipeline)
_loader = dict(num_workers=2, collate_fn=dict(type='mmvpeft.video_query_collate'))
train_dataloader = dict(
    batch_size=32, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(_dataset, ann_file='annotations/highlight_train_release.jsonl'), **_loader)
val_dataloader = dict(
    batch_size=32, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(_dataset, ann_file='annotations/highlight_val_release.jsonl', test_mode=True),
    **_loader)
test_dataloader = dict(
    val_dataloader,
    dataset=dict(_dataset, ann_file='annotations/highlight_test_release.jsonl', test_mode=True,
                 require_windows=False))
val_evaluator = [dict(type='MomentRetrievalMetric'), dict(type='HighlightMetric')]
test_evaluator = dict(type='MomentSubmissionDumper', out_file='work_dirs/qvhighlights_test.jsonl')
