# Video QA with Token Mixing on CPU in about a minute: the synthetic moving-shape mp4s of the
# retrieval demo (written with opencv on first use) with three questions per video, "what
# color is the shape?", "what shape is moving?", "which way does the shape move?", whose
# answers are what is drawn; a tiny random CLIP whose vision tower mixes tokens across
# frames in its last block (which trains), a frozen text tower for the question, a one-layer
# fusion transformer and an answer classifier over the 13 possible answers.
#   python tools/train.py configs/demo/qa_demo.py
#   python tools/test.py configs/demo/qa_demo.py none   # the untrained model
_base_ = ['../_base_/models/tiny_clip.py', '../_base_/default_runtime.py',
          '../_base_/schedules/adamw_cosine.py']

data_root = 'data/demo_retrieval'  # the same videos as the retrieval demo
image_size = {{_base_.image_size}}  # the tiny CLIP's input size
num_frames = 8
generator = dict(num_train=120, num_val=24, duration=4.0, fps=4, size=(64, 64))
# The 6 colours, 3 shapes and 4 directions, in label order (a real set builds its vocabulary
# from the training answers: dict(source='train_qa.json', top_k=1500, file=...)).
answer_vocab = dict(answers=['red', 'green', 'blue', 'yellow', 'magenta', 'cyan', 'circle',
                             'square', 'triangle', 'right', 'left', 'up', 'down'])

model = dict(
    type='VideoQA',
    video_backbone=dict(type='CLIPVisionBackbone', model_cfg={{_base_.tiny_clip}},
                        frozen=True,
                        peft=[dict(type='TokenMixing', layers=(-1, ), alpha=0.8)]),
    text_backbone=dict(type='CLIPTextBackbone', model_cfg={{_base_.tiny_clip}},
                       frozen=True),
    answer_vocab=answer_vocab,
    fusion=dict(dim=64, num_heads=2, num_fusion_layers=1, dropout=0.0),
    head=dict(hidden_dim=128, dropout=0.0),
    topk=3,
)

train_pipeline = [
    dict(type='LoadVideoFrames', num_frames=num_frames, sampling='random'),
    dict(type='VideoResize', short_side=image_size),
    dict(type='VideoCenterCrop', size=image_size),
    dict(type='FormatVideo'),
    dict(type='CLIPTokenize', key='question', context_length=16, trim_padding=True),
    dict(type='PackQAInputs'),
]
test_pipeline = [dict(t, sampling='uniform') if t['type'] == 'LoadVideoFrames' else t
                 for t in train_pipeline]
_loader = dict(num_workers=0, collate_fn=dict(type='mmvpeft.video_query_collate'))
_dataset = dict(type='SyntheticQADataset', data_root=data_root, generator=generator,
                answer_vocab=answer_vocab)
train_dataloader = dict(
    batch_size=24, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(_dataset, split='train', pipeline=train_pipeline), **_loader)
val_dataloader = dict(
    batch_size=36, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(_dataset, split='val', pipeline=test_pipeline, test_mode=True), **_loader)
test_dataloader = val_dataloader
val_evaluator = dict(type='QAAccuracyMetric')
test_evaluator = val_evaluator

max_epochs = 10
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=max_epochs, eta_min=1e-5,
         convert_to_iter_based=True),
]
optim_wrapper = dict(optimizer=dict(lr=2e-3, weight_decay=0.05))
default_hooks = dict(logger=dict(interval=5),
                     checkpoint=dict(interval=5, save_best='acc', rule='greater'))
