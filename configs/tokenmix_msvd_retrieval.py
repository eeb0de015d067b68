# Token Mixing on MSVD text-video retrieval (one of the CLIP4Clip benchmarks): the MSR-VTT
# recipe on MSVD's 1,200 / 100 / 670 videos, about 40 captions per video. CLIP4Clip layout:
#   data/msvd/raw-captions.pkl  train_list.txt  val_list.txt  test_list.txt
#   data/msvd/videos/{vid}.avi
# v2t follows CLIP4Clip's protocol (protocol='clip4clip'), the one behind the published MSVD
# figures: a video ranks its caption group among all videos' groups. protocol='coco' (a video
# ranks its best caption among all captions) gives other, lower numbers: name the protocol
# beside every v2t figure (docs/evaluation.md). t2v is the same under both.
#   python tools/train.py configs/tokenmix_msvd_retrieval.py
# Model and schedule as tokenmix_msrvtt_retrieval.py; the dataset base is MSR-VTT's loaders
# with the dataset swapped below.
_base_ = ['_base_/models/clip_b16_retriever.py', '_base_/datasets/msrvtt_retrieval.py',
          '_base_/default_runtime.py', '_base_/schedules/adamw_cosine_5ep.py']

model = dict(video_backbone=dict(peft=[dict(type='TokenMixing', layers=(-1, ), alpha=0.8)]))
default_hooks = dict(checkpoint=dict(save_best='t2v/R@1', rule='greater'))

data_root = 'data/msvd'
_msvd = dict(type='MSVDRetrievalDataset', data_root=data_root)
train_dataloader = dict(dataset=dict(_msvd, split='train'))
val_dataloader = dict(dataset=dict(_msvd, split='val'))
test_dataloader = dict(dataset=dict(_msvd, split='test'))
val_evaluator = dict(type='RetrievalMetric', protocol='clip4clip')
test_evaluator = val_evaluator
