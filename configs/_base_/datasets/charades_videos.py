# Charades-STA from raw videos, decoded with decord, one frame per 1-second clip (as UniVTG /
# lighthouse use for Charades: ~30 steps a video). Layout (line/lighthouse release):
#   data/charades/annotations/charades_{train,test}_release.jsonl
#       {"qid", "query", "vid", "duration", "relevant_windows": [[s, e]]}  (12,404 / 3,720)
#   data/charades/videos/{vid}.mp4            (e.g. 3MSZA.mp4; ~30 s indoor videos)
# Charades-STA has no val split: the test split is evaluated every epoch, as in the papers
# that report on it (name the split beside the figure). data_root is the one path knob.
data_root = 'data/charades'
clip_len = 1.0
clip_model = 'ViT-B-32'
image_size = 224

pipeline = [
    dict(type='LoadVideoClips', clip_len=clip_len, frames_per_clip=1),
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
    batch_size=32, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(ann_file='annotations/charades_train_release.jsonl', skip_corrupt=True,
                 **dataset_common), **_loader)
val_dataloader = dict(
    batch_size=32, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(ann_file='annotations/charades_test_release.jsonl', test_mode=True,
                 **dataset_common), **_loader)
test_dataloader = val_dataloader
val_evaluator = dict(type='MomentRetrievalMetric')
test_evaluator = val_evaluator
