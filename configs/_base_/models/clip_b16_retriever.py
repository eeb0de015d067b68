# Text-video retrieval model on frozen open_clip ViT-B/16 towers (OpenAI weights through
# open_clip's hub; offline, set model.video_backbone.pretrained / model.text_backbone.pretrained
# to a local file and model_name to 'ViT-B-16-quickgelu'). Leaf configs choose the PEFT
# methods (peft=[...]) of each tower.
model = dict(
    type='VideoTextRetriever',
    video_backbone=dict(type='CLIPVisionBackbone', model_name='ViT-B-16', pretrained='openai',
                        frozen=True, peft=[]),
    text_backbone=dict(type='CLIPTextBackbone', model_name='ViT-B-16', pretrained='openai',
                       frozen=True, peft=[]),
    temporal_pool=dict(type='TemporalPool', mode='mean'),
    loss=dict(type='SymmetricInfoNCELoss', gather=True),
    save_trainable_only=True,
)
