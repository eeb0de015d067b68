# Token Mixing on MSRVTT-QA as *generation*: the answer is decoded word by word instead of
# picked from a fixed vocabulary, so no answer is out of reach. Frozen CLIP ViT-B/16 over 8
# frames with cross-frame key/value mixing in its last block (7,087,872 trained tower
# parameters, as in tokenmix_msrvtt_qa.py); the question goes through the frozen CLIP text
# tower and joins the frames' patch tokens as the memory of open_clip CoCa's text decoder
# (coca_ViT-B-32; frozen, with READ over its words). Scored by the same exact-match
# QAAccuracyMetric as the classifier (it reads only the `pred_answer` strings).
#   python tools/train.py configs/tokenmix_msrvtt_qa_generation.py
#   python tools/test.py configs/tokenmix_msrvtt_qa_generation.py CKPT --dump answers.jsonl
_base_ = ['_base_/datasets/msrvtt_qa.py', '_base_/default_runtime.py',
          '_base_/schedules/adamw_cosine_5ep.py']

model = dict(
    type='VideoCaptioner',
    video_backbone=dict(type='CLIPVisionBackbone', model_name='ViT-B-16', pretrained='openai',
                        frozen=True, peft=[dict(type='TokenMixing', layers=(-1, ), alpha=0.8)]),
    text_backbone=dict(type='CLIPTextBackbone', model_name='ViT-B-16', pretrained='openai',
                       frozen=True),
    decoder=dict(type='VideoTextDecoder', model_name='coca_ViT-B-32',
                 pretrained='laion2b_s13b_b90k', frozen=True, max_frames=8,
                 peft=[dict(type='READ', layers=(-2, -1), hidden_dim=64)]),
    memory='patches',
    generation=dict(max_len=6, beam_size=1),  # MSRVTT-QA answers are one word
    pred_key='pred_answer',
    save_trainable_only=True,
)

# The answer is the decoder's target, the question its text context; no answer vocabulary
# (training keeps every question).
train_pipeline = [
    dict(type='LoadVideoFrames', num_frames=8, sampling='random'),
    dict(type='VideoResize', short_side=224),
    dict(type='VideoCenterCrop', size=224),
    dict(type='FormatVideo'),
    dict(type='CLIPTokenizeChunks', key='question', context_length=77, max_chunks=1),
    dict(type='CLIPTokenize', key='answer', context_length=8, trim_padding=True),
    dict(type='PackQAInputs'),
]
test_pipeline = [dict(t, sampling='uniform') if t['type'] == 'LoadVideoFrames' else t
                 for t in train_pipeline]
train_dataloader = dict(dataset=dict(answer_vocab=None, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(answer_vocab=None, pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(answer_vocab=None, pipeline=test_pipeline))
dump_metric = 'QAAnswerDumper'  # tools/test.py --dump writes answers, not captions
optim_wrapper = dict(optimizer=dict(lr=5e-5))
default_hooks = dict(checkpoint=dict(save_best='acc', rule='greater'))
