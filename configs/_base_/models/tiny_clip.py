# The tiny random CLIP of every demo (configs/demo/*.py): 32 px frames in 8 px patches, two
# 64-wide blocks per tower, a 16-token text context. A demo uses it as
#   model = dict(video_backbone=dict(model_cfg={{_base_.tiny_clip}}, ...), ...)
# (configs/demo/tiny_clip.json is the same model as an open_clip model config file).
# Its weights are random, drawn from each tower's init_seed (default 0; set
# model.video_backbone.init_seed / model.text_backbone.init_seed for another base), never from
# the global RNG: training, tools/test.py, init_grounder and the demos build the same towers.
image_size = 32
context_length = 16
tiny_clip = dict(
    embed_dim=64,
    vision_cfg=dict(image_size=image_size, patch_size=8, width=64, layers=2, head_width=32,
                    mlp_ratio=2.0),
    text_cfg=dict(context_length=context_length, vocab_size=49408, width=64, heads=2,
                  layers=2, mlp_ratio=2.0))
