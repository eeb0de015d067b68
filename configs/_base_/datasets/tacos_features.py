# TaCoS with pre-extracted features, in the layout of the public feature releases
# (moment_detr / line-lighthouse). Put the files here (or set data_root):
#   data/tacos/annotations/tacos_{train,val,test}_release.jsonl
#   data/tacos/clip_features/{vid}.npz       ['features']          (T, 512), one row per 2 s
#   data/tacos/slowfast_features/{vid}.npz   ['features']          (T, 2304)
#   data/tacos/clip_text_features/qid{qid}.npz ['last_hidden_state'] (L, 512)
# See docs/data_preparation.md for where the releases come from. Paths below are relative to
# data_root, joined by the dataset when it is built: data_root is the one knob
# (--cfg-options data_root=/my/tacos, or data_root = ... in a child config).
data_root = 'data/tacos'
clip_len = 2.0
feat_dirs = ['clip_features', 'slowfast_features']
video_dim, text_dim = 512 + 2304, 512

pipeline = [
    dict(type='LoadClipFeatures', feat_dirs=feat_dirs, clip_len=clip_len),
    dict(type='LoadTextFeatures', feat_dir='clip_text_features', max_len=32),
    dict(type='PackMomentInputs'),
]
# Shared by the loaders. The collate name is scoped: MMEngine's Runner looks collate
# functions up in the root registry.
_loader = dict(num_workers=4, persistent_workers=True,
               collate_fn=dict(type='mmvpeft.video_query_collate'))
train_dataloader = dict(
    batch_size=32, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='MomentRetrievalDataset', pipeline=pipeline, data_root=data_root,
                 ann_file='annotations/tacos_train_release.jsonl'), **_loader)
val_dataloader = dict(
    batch_size=32, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='MomentRetrievalDataset', pipeline=pipeline, test_mode=True,
                 data_root=data_root,
                 ann_file='annotations/tacos_val_release.jsonl'), **_loader)
test_dataloader = dict(
    val_dataloader,
    dataset=dict(val_dataloader['dataset'],
                 ann_file='annotations/tacos_test_release.jsonl'))
val_evaluator = dict(type='MomentRetrievalMetric')
test_evaluator = val_evaluator
