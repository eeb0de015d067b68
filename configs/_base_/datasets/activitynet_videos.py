# ActivityNet Captions grounding from raw videos, decoded with decord, one frame per 2-second
# clip. Layout (line/lighthouse release):
#   data/activitynet/annotations/activitynet_{train,val}_release.jsonl
#       {"qid", "query", "vid", "duration", "relevant_windows": [[s, e]]}  (val: 17,505)
#   data/activitynet/videos/{vid}.mp4         (e.g. v_uqiMw7tQ1Cc.mp4; up to ~12 min)
# The usual protocol trains on train and reports on val (val_1 and val_2 together in the
# lighthouse release); a few annotated windows end slightly past the video and are clipped
# to [0, duration] by the dataset (with one warning). data_root is the one path knob.
data_root = 'data/activitynet'
clip_len = 2.0
clip_model = 'ViT-B-32'
image_size = 224
# Videos run to ~750 s (375 clips); longer ones are re-cut into max_clips equal clips.
max_clips = 256

pipeline = [
    dict(type='LoadVideoClips', clip_len=clip_len, frames_per_clip=1, max_clips=max_clips),
    dict(type='VideoResize', short_side=image_size),
    dict(type='VideoCenterCrop', size=image_size),
    dict(type='FormatVideo'),
    dict(type='CLIPTokenize', model_name=clip_model, context_length=32, trim_padding=True),
    dict(type='PackMomentInputs'),
]
dataset_common = dict(type='MomentRetrievalDataset', data_root=data_root, video_dir='videos',
                      video_ext='.mp4', pipeline=pipeline)
_loader = dict(num_workers=4, persistent_workers=True,
               collate_fn=dict(type='mmvpeft.video_query_collate'))
train_dataloader = dict(
    batch_size=8, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(ann_file='annotations/activitynet_train_release.jsonl', skip_corrupt=True,
                 **dataset_common), **_loader)
val_dataloader = dict(
    batch_size=8, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(ann_file='annotations/activitynet_val_release.jsonl', test_mode=True,
                 **dataset_common), **_loader)
test_dataloader = val_dataloader
val_evaluator = dict(type='MomentRetrievalMetric')
test_evaluator = val_evaluator
