# Token Mixing on MSRVTT-QA (the AAAI 2023 paper's QA setting) as answer classification over
# the 1,500 most frequent training answers: frozen CLIP ViT-B/16 over 8 frames with
# cross-frame key/value mixing in its last block (the only tower part that trains:
# 7,087,872 parameters, the paper's budget), the frozen CLIP text tower over the question,
# a 2-layer joint fusion transformer and an answer classifier trained from scratch.
#   python tools/train.py configs/tokenmix_msrvtt_qa.py
#   python tools/test.py configs/tokenmix_msrvtt_qa.py work_dirs/tokenmix_msrvtt_qa/best_acc_epoch_N.pth --dump answers.jsonl
# The vocabulary file can be made beforehand:
#   python tools/build_answer_vocab.py data/msrvtt_qa/train_qa.json data/msrvtt_qa/answer_vocab_top1500.json
# OpenAI weights come through open_clip's hub; offline, set model.video_backbone.pretrained /
# model.text_backbone.pretrained to a local file and model_name to 'ViT-B-16-quickgelu'.
_base_ = ['_base_/datasets/msrvtt_qa.py', '_base_/default_runtime.py',
          '_base_/schedules/adamw_cosine_5ep.py']

model = dict(
    type='VideoQA',
    video_backbone=dict(type='CLIPVisionBackbone', model_name='ViT-B-16', pretrained='openai',
                        frozen=True, peft=[dict(type='TokenMixing', layers=(-1, ), alpha=0.8)]),
    text_backbone=dict(type='CLIPTextBackbone', model_name='ViT-B-16', pretrained='openai',
                       frozen=True),
    # The head's size is a config value; the answer strings come from the vocabulary file
    # the datasets write on first use (or tools/build_answer_vocab.py), never from the
    # annotations, so the model builds without any data.
    num_answers=1500,
    answer_vocab=dict(file='answer_vocab_top1500.json', data_root='data/msrvtt_qa'),
    fusion=dict(type='CrossModalEncoder', dim=256, num_heads=4, num_fusion_layers=2,
                fusion='joint', dropout=0.1),
    head=dict(type='AnswerClassifierHead', hidden_dim=768, dropout=0.1),
    save_trainable_only=True,
)

# AdamW, weight decay 0.05, cosine over 5 epochs (the paper); the mixing block at 2e-5, the
# fusion and the classifier (trained from scratch) at 10x.
optim_wrapper = dict(optimizer=dict(lr=2e-5),
                     paramwise_cfg=dict(custom_keys={'fusion': dict(lr_mult=10.0),
                                                     'head': dict(lr_mult=10.0)}))
default_hooks = dict(checkpoint=dict(save_best='acc', rule='greater'))
