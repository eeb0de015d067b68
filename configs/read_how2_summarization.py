# READ + PVLA on How2 summarization (video + transcript -> summary, the READ paper's
# video-language summarization task): frozen CLIP ViT-B/32 towers (OpenAI weights) with
# recurrent adapters (r=32) in their last 4 blocks (over frames / over transcript words),
# PVLA between the two towers' adapter states, and READ (over words, one-directional:
# causal) in the last 4 self-attention blocks of open_clip CoCa's frozen text decoder
# (coca_ViT-B-32, LAION-2B weights; offline, set model.decoder.pretrained to a local file).
# The transcript is encoded in chunks of the text tower's 77 tokens (up to 8) and joined to
# the 16 frames' patch tokens as the decoder's memory. Scores: ROUGE-1/2/L F1 plus
# pycocoevalcap's BLEU, METEOR, ROUGE_L, CIDEr.
#   data/how2/sum_{train,cv,devtest}/{tran,desc}.tok.txt   data/how2/videos/{id}.mp4
#   python tools/train.py configs/read_how2_summarization.py
_base_ = ['_base_/default_runtime.py', '_base_/schedules/adamw_cosine_5ep.py']

data_root = 'data/how2'
num_frames = 16
image_size = 224
_read = dict(type='READ', layers=(-4, -3, -2, -1), hidden_dim=32, rnn_type='rnn')
model = dict(
    type='VideoCaptioner',
    video_backbone=dict(type='CLIPVisionBackbone', model_name='ViT-B-32', pretrained='openai',
                        frozen=True, peft=[dict(_read, mode='cls')]),
    text_backbone=dict(type='CLIPTextBackbone', model_name='ViT-B-32', pretrained='openai',
                       frozen=True, peft=[_read]),
    decoder=dict(type='VideoTextDecoder', model_name='coca_ViT-B-32',
                 pretrained='laion2b_s13b_b90k', frozen=True, max_frames=num_frames,
                 peft=[_read]),
    pvla_loss=dict(type='PVLALoss', mass=0.5, eps=0.1, num_iters=100, loss_weight=0.1),
    memory='patches',
    generation=dict(max_len=60, beam_size=4, length_penalty=1.0),
    save_trainable_only=True,
)

train_pipeline = [
    dict(type='LoadVideoFrames', num_frames=num_frames, sampling='random'),
    dict(type='VideoResize', short_side=image_size),
    dict(type='VideoCenterCrop', size=image_size),
    dict(type='FormatVideo'),
    # the summary: CoCa's decoder context is 76 tokens
    dict(type='CLIPTokenize', key='captions', multi=True, context_length=76,
         trim_padding=True),
    dict(type='CLIPTokenizeChunks', key='transcript', context_length=77, max_chunks=8),
    dict(type='PackCaptionInputs'),
]
test_pipeline = [dict(t, sampling='uniform') if t['type'] == 'LoadVideoFrames' else t
                 for t in train_pipeline]
_loader = dict(num_workers=4, persistent_workers=True,
               collate_fn=dict(type='mmvpeft.video_captions_collate'))
train_dataloader = dict(
    batch_size=16, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='How2SummarizationDataset', data_root=data_root, split='train',
                 pipeline=train_pipeline, skip_corrupt=True), **_loader)
val_dataloader = dict(
    batch_size=8, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='How2SummarizationDataset', data_root=data_root, split='val',
                 pipeline=test_pipeline, test_mode=True), **_loader)
test_dataloader = dict(
    batch_size=8, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='How2SummarizationDataset', data_root=data_root, split='test',
                 pipeline=test_pipeline, test_mode=True), **_loader)
val_evaluator = dict(type='CaptionMetric', rouge_f1=True)
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=1e-4))
default_hooks = dict(checkpoint=dict(save_best='ROUGE-L-F1', rule='greater'))
