"""The grounding demo with saliency: highlight detection (HD mAP and HIT@1) above chance
after a short training run, and the adapter file training writes rebuilds the same model."""
import json
import os.path as osp

import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO_ROOT, 'configs', 'demo', 'grounding_demo.py')


def test_grounding_demo_reports_hd_above_chance(tmp_path, monkeypatch, load_tool):
    monkeypatch.chdir(tmp_path)  # the demo writes its data under ./data/demo_grounding
    gen = dict(num_train_videos=96, num_val_videos=32)
    opts = ['train_cfg.max_epochs=12', 'train_cfg.val_interval=12',
            'default_hooks.checkpoint.interval=12', 'default_hooks.logger.interval=50']
    for split in ('train', 'val', 'test'):
        opts += [f'{split}_dataloader.dataset.generator.{k}={v}' for k, v in gen.items()]
    work = tmp_path / 'work'
    load_tool('train').main([CONFIG, '--work-dir', str(work), '--cfg-options', *opts])
    scalars = [json.loads(line) for p in work.glob('*/vis_data/scalars.json') for line in open(p)]
    final = [s for s in scalars if 'HL-min-Fair-mAP' in s][-1]
    for level in ('Fair', 'Good', 'VeryGood'):
        for m in ('mAP', 'Hit1'):
            key = f'HL-min-{level}-{m}'
            assert final[key] > final[f'chance/{key}'] + 5, (key, final)

    # adapter_latest.safetensors (written beside epoch_12.pth) predicts what the .pth does
    from mmengine.runner import load_checkpoint

    from mmvpeft.registry import MODELS
    from mmvpeft.utils.adapter_io import build_from_adapter
    model, cfg = build_from_adapter(str(work / 'adapter_latest.safetensors'))
    ref = MODELS.build(cfg.model).eval()
    load_checkpoint(ref, str(work / 'epoch_12.pth'), map_location='cpu', strict=True)
    feats = dict(video_feat=torch.randn(2, 20, 64), video_mask=torch.ones(2, 20, dtype=bool),
                 text_feat=torch.randn(2, 5, 48), text_mask=torch.ones(2, 5, dtype=bool))
    with torch.no_grad():
        assert torch.equal(model(feats)['logits'], ref(feats)['logits'])
