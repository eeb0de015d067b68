# Video-language summarization on CPU in under a minute: each synthetic video (one coloured
# shape moving in one direction; the caption demo's videos, in data/demo_retrieval) comes
# with a spoken-style transcript that names the colour, the shape and the motion among
# filler sentences; the target is a one-line summary ("a red circle moves to the right").
# A tiny random CLIP with READ in both frozen towers and PVLA between them; the transcript
# (about 60 tokens, longer than the tiny text tower's 16-token context) is encoded in chunks
# and joined to the video tokens as the decoder's memory; the decoder (random, so it trains
# here) also carries READ over words.
#   python tools/test.py configs/demo/summarization_demo.py none   # the untrained model
#   python tools/train.py configs/demo/summarization_demo.py
_base_ = ['../_base_/models/tiny_clip.py', '../_base_/default_runtime.py',
          '../_base_/schedules/adamw_cosine.py']

data_root = 'data/demo_retrieval'
image_size = {{_base_.image_size}}  # the tiny CLIP's input size
num_frames = 8
context_length = {{_base_.context_length}}
generator = dict(num_train=120, num_val=24, duration=4.0, fps=4, size=(64, 64))
tiny_decoder = dict(width=64, heads=2, layers=2, vocab_size=49408,
                    context_length=context_length, mlp_ratio=2.0)
# The decoder predicts only the words of the demo's summaries (VideoTextDecoder
# vocab_texts): a 49408-way output layer would dominate a CPU step.
summary_words = ['a red green blue yellow magenta cyan circle square triangle moves to the '
                 'left right up down']
_read = dict(type='READ', layers=(-1, ), hidden_dim=16)

model = dict(
    type='VideoCaptioner',
    video_backbone=dict(type='CLIPVisionBackbone', model_cfg={{_base_.tiny_clip}},
                        frozen=True, peft=[_read]),
    text_backbone=dict(type='CLIPTextBackbone', model_cfg={{_base_.tiny_clip}},
                       frozen=True, peft=[_read]),
    decoder=dict(type='VideoTextDecoder', model_cfg=tiny_decoder, frozen=False,
                 max_frames=num_frames, vocab_texts=summary_words, peft=[_read]),
    pvla_loss=dict(type='PVLALoss', mass=0.5, eps=0.1, num_iters=50, loss_weight=0.1),
    memory='patches',
    generation=dict(max_len=12, beam_size=1),
)

train_pipeline = [
    dict(type='LoadVideoFrames', num_frames=num_frames, sampling='random'),
    dict(type='VideoResize', short_side=image_size),
    dict(type='VideoCenterCrop', size=image_size),
    dict(type='FormatVideo'),
    dict(type='CLIPTokenize', key='captions', multi=True, context_length=context_length,
         trim_padding=True),
    dict(type='CLIPTokenizeChunks', key='transcript', context_length=context_length,
         max_chunks=8),
    dict(type='PackCaptionInputs'),
]
test_pipeline = [dict(t, sampling='uniform') if t['type'] == 'LoadVideoFrames' else t
                 for t in train_pipeline]
_loader = dict(num_workers=0, collate_fn=dict(type='mmvpeft.video_captions_collate'))
train_dataloader = dict(
    batch_size=24, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='SyntheticSummarizationDataset', data_root=data_root, split='train',
                 generator=generator, pipeline=train_pipeline), **_loader)
val_dataloader = dict(
    batch_size=24, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SyntheticSummarizationDataset', data_root=data_root, split='val',
                 generator=generator, pipeline=test_pipeline, test_mode=True), **_loader)
test_dataloader = val_dataloader
# METEOR (Java, ~20 s to start) is left out to keep the demo short; the real config has it.
val_evaluator = dict(type='CaptionMetric', scorers=('BLEU', 'ROUGE_L', 'CIDEr'), rouge_f1=True)
test_evaluator = val_evaluator

max_epochs = 8
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=max_epochs, eta_min=1e-5,
         convert_to_iter_based=True),
]
optim_wrapper = dict(optimizer=dict(lr=2e-3, weight_decay=0.01))
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=max_epochs))
