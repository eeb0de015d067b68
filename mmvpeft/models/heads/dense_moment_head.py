"""Dense per-clip grounding head: foreground score and distances to the moment boundaries
(the anchor-free design of UniVTG / R2-Tuning)."""
from typing import List

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from mmvpeft.ops.temporal_nms import temporal_nms
from mmvpeft.registry import MODELS


def build_targets(data_samples: List[dict], num_clips: int, device) -> tuple:
    """Per-clip targets from ground-truth windows.

    Clip ``i`` covers ``[i, i+1)`` in clip units (centre ``i + 0.5``). A clip is foreground
    when its centre lies in a window; the clip holding a window's midpoint is always
    foreground so windows shorter than a clip still get one. Overlapping windows: a clip
    regresses to the shortest window that contains it.

    Returns:
        tuple: ``fg (B, T)`` bool and ``dist (B, T, 2)`` distances (clip units) from the clip
        centre back to the start and on to the end.
    """
    fg = torch.zeros(len(data_samples), num_clips, dtype=torch.bool)
    dist = torch.zeros(len(data_samples), num_clips, 2)
    centres = torch.arange(num_clips) + 0.5
    for b, sample in enumerate(data_samples):
        windows = torch.as_tensor(np.asarray(sample['gt_windows'], dtype=np.float32)).reshape(
            -1, 2) / sample['clip_len']
        # Longest first, so shorter windows overwrite where windows overlap.
        for s, e in sorted(windows.tolist(), key=lambda w: w[0] - w[1]):
            inside = (centres >= s) & (centres <= e)
            mid = min(int((s + e) / 2), num_clips - 1)
            inside[mid] = True
            inside &= torch.arange(num_clips) < sample['num_clips']
            fg[b, inside] = True
            dist[b, inside, 0] = (centres[inside] - s).clamp(min=0)
            dist[b, inside, 1] = (e - centres[inside]).clamp(min=0)
    return fg.to(device), dist.to(device)


@MODELS.register_module()
class DenseMomentHead(BaseModule):
    """Per-clip foreground logit and boundary distances.

    Args:
        in_dim: encoder width.
        hidden_dim: width of the temporal conv stacks.
        num_convs: 1-D conv layers per branch (kernel 3, along time).
        loss_cls: foreground loss config (``loss_cls`` key). Default: plain BCE (focal with
            ``gamma=0``), which learned faster than ``gamma=2, alpha=0.25`` on the demo set.
        loss_reg: boundary L1 loss config (``loss_reg`` key); None to disable.
        loss_iou: boundary GIoU loss config (``loss_iou`` key); None to disable.
    """

    def __init__(self, in_dim: int, hidden_dim: int = 256, num_convs: int = 2,
                 loss_cls: dict = dict(type='SigmoidFocalLoss', gamma=0.0, alpha=None),
                 loss_reg: dict = dict(type='L1BoundaryLoss', loss_weight=0.2),
                 loss_iou: dict = dict(type='GIoU1DLoss', loss_weight=1.0), init_cfg=None):
        super().__init__(init_cfg=init_cfg)

        def branch(out_dim):
            dims = [in_dim] + [hidden_dim] * num_convs + [out_dim]
            return nn.ModuleList(nn.Conv1d(i, o, 3, padding=1) for i, o in zip(dims, dims[1:]))

        self.cls_branch, self.reg_branch = branch(1), branch(2)
        self.losses = nn.ModuleDict()
        for key, cfg in (('loss_cls', loss_cls), ('loss_reg', loss_reg), ('loss_iou', loss_iou)):
            if cfg is not None:
                self.losses[key] = MODELS.build(cfg)
        if 'loss_cls' not in self.losses:
            raise ValueError('DenseMomentHead needs loss_cls: scores rank the windows')

    @property
    def loss_keys(self) -> tuple:
        """The loss names this head returns (the model sums exactly these)."""
        return tuple(self.losses.keys())

    def forward(self, feats: torch.Tensor, mask: torch.Tensor) -> dict:
        """Args: feats ``(B, T, D)``, mask ``(B, T)``.
        Returns: ``logits (B, T)`` and ``dist (B, T, 2)`` non-negative, in clip units."""
        x = feats.transpose(1, 2)
        m = mask[:, None].to(x.dtype)
        return dict(logits=self._run(self.cls_branch, x, m)[:, 0],
                    dist=F.softplus(self._run(self.reg_branch, x, m)).transpose(1, 2))

    @staticmethod
    def _run(convs: nn.ModuleList, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        # Re-mask before every conv: a padded position must look like the conv's own zero
        # padding, else a clip's output depends on how much its batch was padded (and
        # data-parallel shards would disagree with a single process).
        for i, conv in enumerate(convs):
            x = conv(x * m)
            if i < len(convs) - 1:
                x = F.gelu(x)
        return x

    def loss(self, outputs: dict, mask: torch.Tensor, data_samples: List[dict]) -> dict:
        fg, dist = build_targets(data_samples, mask.shape[1], mask.device)
        losses = dict(loss_cls=self.losses['loss_cls'](outputs['logits'], fg, mask))
        for key in ('loss_reg', 'loss_iou'):
            if key in self.losses:
                losses[key] = self.losses[key](outputs['dist'], dist, fg & mask)
        return losses

    @torch.no_grad()
    def predict(self, outputs: dict, mask: torch.Tensor, data_samples: List[dict],
                nms_thr: float = 0.7, max_windows: int = 10) -> List[dict]:
        """Windows in seconds, ``[start, end, score]`` by descending score, per sample.

        Returns:
            list of dicts with ``pred_relevant_windows`` (K <= max_windows) and
            ``pred_saliency_scores`` (per-clip foreground probability).
        """
        scores = outputs['logits'].float().sigmoid().cpu()
        dist = outputs['dist'].float().cpu()
        results = []
        for b, sample in enumerate(data_samples):
            n, clip_len = int(mask[b].sum()), sample['clip_len']
            centre = torch.arange(n) + 0.5
            windows = torch.stack([centre - dist[b, :n, 0], centre + dist[b, :n, 1]], -1)
            windows = (windows * clip_len).clamp(0, sample['duration'])
            keep = temporal_nms(windows, scores[b, :n], nms_thr, max_windows)
            pred = torch.cat([windows[keep], scores[b, :n][keep, None]], dim=1)
            results.append(dict(pred_relevant_windows=pred.tolist(),
                                pred_saliency_scores=scores[b, :n].tolist()))
        return results
