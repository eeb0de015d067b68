# TVSum from raw videos: query-free highlight detection over ten categories (BK, BT, DS, FM,
# GA, MS, PK, PR, VT, VU), top-5 mAP (20 annotators) per category and averaged. The text
# input is the category code (text_source='domain'; 'query' feeds the video title, 'none' an
# empty query). data_root is the one knob pointing this at your copy:
#   data/tvsum/annotations/tvsum_{train,val}_release.jsonl
#   data/tvsum/videos/{vid}.mp4
# One model per domain, as UMT and UniVTG report it: set dataset.domains=['BK'] in all loaders.
data_root = 'data/tvsum'
image_size = 224

pipeline = [
    dict(type='LoadVideoClips', clip_len=2.0, frames_per_clip=1, max_clips=256),
    dict(type='VideoResize', short_side=image_size),
    dict(type='VideoCenterCrop', size=image_size),
    dict(type='FormatVideo'),
    dict(type='CLIPTokenize', model_name='ViT-B-32', context_length=32, trim_padding=True),
    dict(type='PackMomentInputs'),
]
_dataset = dict(type='HighlightDataset', protocol='tvsum', text_source='domain',
                data_root=data_root, video_dir='videos', video_ext='.mp4', pipeline=pipeline)
_loader = dict(num_workers=4, persistent_workers=True,
               collate_fn=dict(type='mmvpeft.video_query_collate'))
train_dataloader = dict(
    batch_size=8, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(_dataset, ann_file='annotations/tvsum_train_release.jsonl',
                 skip_corrupt=True), **_loader)
val_dataloader = dict(
    batch_size=8, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(_dataset, ann_file='annotations/tvsum_val_release.jsonl',
                 test_mode=True), **_loader)
test_dataloader = val_dataloader
val_evaluator = dict(type='HighlightMetric', protocol='tvsum', chance_draws=10)
test_evaluator = val_evaluator
