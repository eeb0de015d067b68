# READ + PVLA on Charades-STA temporal grounding (one of the READ paper's grounding
# benchmarks): frozen CLIP ViT-B/32, recurrent adapters (r=32, RNN) in the last 4 blocks of
# both towers, PVLA between their states, the cross-modal encoder and the dense head; the
# same settings as read_tacos.py / read_qvhighlights.py. Layout (line/lighthouse release):
#   data/charades/annotations/charades_{train,test}_release.jsonl
#       {"qid", "query", "vid", "duration", "relevant_windows": [[s, e]]}  (12,404 / 3,720)
#   data/charades/videos/{vid}.mp4            (e.g. 3MSZA.mp4; ~30 s indoor videos)
# Charades-STA has no val split: the test split is evaluated every epoch, as in the papers
# that report on it (R1@0.5 / R1@0.7 / mIoU; name the split beside the figure).
#   python tools/train.py configs/read_charades.py
_base_ = ['_base_/models/read_b32_grounder.py', '_base_/default_runtime.py',
          '_base_/schedules/adamw_cosine.py']

data_root = 'data/charades'
clip_model = 'ViT-B-32'
image_size = 224
# Videos are ~30 s: 1-second clips (as UniVTG / lighthouse use for Charades) give ~30 steps.
clip_len = 1.0

pipeline = [
    dict(type='LoadVideoClips', clip_len=clip_len, frames_per_clip=1),
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
    batch_size=32, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(_dataset, ann_file='annotations/charades_train_release.jsonl',
                 skip_corrupt=True), **_loader)
val_dataloader = dict(
    batch_size=32, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(_dataset, ann_file='annotations/charades_test_release.jsonl',
                 test_mode=True), **_loader)
test_dataloader = val_dataloader
val_evaluator = dict(type='MomentRetrievalMetric')
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=1e-4))
default_hooks = dict(checkpoint=dict(save_best='R1@0.5', rule='greater'))
