# READ + PVLA on ActivityNet Captions temporal grounding (one of the READ paper's grounding
# benchmarks): frozen CLIP ViT-B/32, recurrent adapters (r=32, RNN) in the last 4 blocks of
# both towers, PVLA between their states, the cross-modal encoder and the dense head; the
# same settings as read_tacos.py / read_qvhighlights.py. Layout (line/lighthouse release):
#   data/activitynet/annotations/activitynet_{train,val}_release.jsonl
#       {"qid", "query", "vid", "duration", "relevant_windows": [[s, e]]}  (val: 17,505)
#   data/activitynet/videos/{vid}.mp4         (e.g. v_uqiMw7tQ1Cc.mp4; up to ~12 min)
# The usual protocol trains on train and reports on val (val_1 and val_2 together in the
# lighthouse release); a few annotated windows end slightly past the video and are clipped
# to [0, duration] by the dataset (with one warning).
#   python tools/train.py configs/read_activitynet.py
_base_ = ['_base_/models/read_b32_grounder.py', '_base_/default_runtime.py',
          '_base_/schedules/adamw_cosine.py']

data_root = 'data/activitynet'
clip_model = 'ViT-B-32'
image_size = 224
clip_len = 2.0
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
_dataset = dict(type='MomentRetrievalDataset', data_root=data_root, video_dir='videos',
                video_ext='.mp4', pipeline=pipeline)
_loader = dict(num_workers=4, persistent_workers=True,
               collate_fn=dict(type='mmvpeft.moment_collate'))
train_dataloader = dict(
    batch_size=8, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(_dataset, ann_file='annotations/activitynet_train_release.jsonl',
                 skip_corrupt=True), **_loader)
val_dataloader = dict(
    batch_size=8, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(_dataset, ann_file='annotations/activitynet_val_release.jsonl',
                 test_mode=True), **_loader)
test_dataloader = val_dataloader
val_evaluator = dict(type='MomentRetrievalMetric')
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=1e-4))
default_hooks = dict(checkpoint=dict(save_best='R1@0.5', rule='greater'))
