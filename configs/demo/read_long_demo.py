# The frame model of tools/benchmark_long_video.py: read_demo.py with a recipe that learns
# which shape the query names, for grounding in videos 11x longer than its 16 s training
# videos (configs/demo/read_demo.py keeps the quick demo and its figures).
#   python tools/train.py configs/demo/read_long_demo.py   # about 5 min on 2 CPU cores
#   python tools/benchmark_long_video.py --only frames --frame-config configs/demo/read_long_demo.py
# Changes from read_demo.py: 192 synthetic videos (the same generator, so the same colours,
# shapes, speeds and frame size as write_long_shape_video), READ in both blocks of both towers
# (hidden 32), and the encoder's inputs standardised per channel (input_norm='batch').
_base_ = ['./read_demo.py']

data_root = 'data/demo_read_long'
generator = dict(num_videos=192, duration=16.0, fps=4, size=(64, 64), val_ratio=0.25)
_read = dict(type='READ', layers=(0, 1), hidden_dim=32, rnn_type='rnn')

model = dict(
    video_backbone=dict(peft=[dict(_read, mode='tokens')]),
    text_backbone=dict(peft=[_read]),
    encoder=dict(input_norm='batch'))

train_dataloader = dict(dataset=dict(data_root=data_root, generator=generator))
val_dataloader = dict(dataset=dict(data_root=data_root, generator=generator))
test_dataloader = val_dataloader

# Longer than read_demo's 30 epochs: in a long video the queried shape competes with a
# dozen distractors, not two, so near misses (blue / cyan) must be rarer.
max_epochs = 60
train_cfg = dict(max_epochs=max_epochs, val_interval=20)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=2,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=2, end=max_epochs, eta_min=1e-6,
         convert_to_iter_based=True),
]
default_hooks = dict(checkpoint=dict(interval=20))
