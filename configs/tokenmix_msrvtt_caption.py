# Token Mixing on MSR-VTT captioning: frozen CLIP ViT-B/16 (OpenAI weights), 8 frames,
# cross-frame key/value mixing in the last vision block (which trains: 7,087,872 tower
# parameters, the paper's ~7M budget). The per-frame patch tokens (8 x 196) are the memory
# of open_clip CoCa's text decoder (coca_ViT-B-32, LAION-2B weights from open_clip's hub;
# offline, point model.decoder.pretrained at a local file), kept frozen: only its memory
# projection and frame-time embedding train (0.40M). Greedy decoding, 20 tokens.
#   python tools/train.py configs/tokenmix_msrvtt_caption.py
#   python tools/test.py configs/tokenmix_msrvtt_caption.py CKPT --dump preds.jsonl
_base_ = ['_base_/datasets/msrvtt_caption.py', '_base_/default_runtime.py',
          '_base_/schedules/adamw_cosine_5ep.py']

model = dict(
    type='VideoCaptioner',
    video_backbone=dict(type='CLIPVisionBackbone', model_name='ViT-B-16', pretrained='openai',
                        frozen=True, peft=[dict(type='TokenMixing', layers=(-1, ), alpha=0.8)]),
    decoder=dict(type='VideoTextDecoder', model_name='coca_ViT-B-32',
                 pretrained='laion2b_s13b_b90k', frozen=True, max_frames=8),
    memory='patches',
    generation=dict(max_len=20, beam_size=1),
    save_trainable_only=True,
)
default_hooks = dict(checkpoint=dict(save_best='CIDEr', rule='greater'))
optim_wrapper = dict(optimizer=dict(lr=5e-5))
