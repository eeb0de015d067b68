# TaCoS from raw videos, decoded with decord and sampled per 2-second clip. Layout:
#   data/tacos/annotations/tacos_{train,val,test}_release.jsonl
#   data/tacos/videos/{vid}.avi            (the MPII Cooking Composite release names, e.g.
#                                          s13-d21.avi; set video_ext for other containers)
# Cached frames instead of videos: replace LoadVideoClips with
#   dict(type='LoadFrameFolder', fps=FPS, filename_tmpl='img_{:05d}.jpg')
# and give the dataset frame_dir='frames' (data_root/frames/{vid}/img_00001.jpg ...).
# Paths are relative to data_root, joined by the dataset when it is built: data_root is the
# one knob (--cfg-options data_root=/my/tacos, or data_root = ... in a child config).
data_root = 'data/tacos'
clip_len = 2.0
clip_model = 'ViT-B-32'
image_size = 224
# TaCoS videos run to 1,400 s (700 clips); longer ones are re-cut into max_clips equal
# clips (the model reads the effective clip length from the sample).
max_clips = 256

train_pipeline = [
    dict(type='LoadVideoClips', clip_len=clip_len, frames_per_clip=1, max_clips=max_clips),
    dict(type='VideoResize', short_side=image_size),
    dict(type='VideoCenterCrop', size=image_size),
    dict(type='FormatVideo'),
    dict(type='CLIPTokenize', model_name=clip_model, context_length=32, trim_padding=True),
    dict(type='PackMomentInputs'),
]
test_pipeline = train_pipeline
dataset_common = dict(type='MomentRetrievalDataset', data_root=data_root, video_dir='videos',
                      video_ext='.avi')
# Shared by the loaders. The collate name is scoped: MMEngine's Runner looks collate
# functions up in the root registry.
_loader = dict(num_workers=4, persistent_workers=True,
               collate_fn=dict(type='mmvpeft.video_query_collate'))
train_dataloader = dict(
    batch_size=8, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(ann_file='annotations/tacos_train_release.jsonl',
                 pipeline=train_pipeline, skip_corrupt=True, **dataset_common), **_loader)
val_dataloader = dict(
    batch_size=8, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(ann_file='annotations/tacos_val_release.jsonl',
                 pipeline=test_pipeline, test_mode=True, **dataset_common), **_loader)
test_dataloader = dict(
    val_dataloader,
    dataset=dict(val_dataloader['dataset'],
                 ann_file='annotations/tacos_test_release.jsonl'))
val_evaluator = dict(type='MomentRetrievalMetric')
test_evaluator = val_evaluator
