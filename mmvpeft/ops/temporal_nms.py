"""Greedy non-maximum suppression of 1-D windows."""
import torch


def window_iou(windows: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """tIoU between ``(N, 2)`` and ``(M, 2)`` windows -> ``(N, M)``."""
    inter = (torch.minimum(windows[:, None, 1], others[None, :, 1]) -
             torch.maximum(windows[:, None, 0], others[None, :, 0])).clamp(min=0)
    lengths = windows[:, 1] - windows[:, 0]
    union = lengths[:, None] + (others[:, 1] - others[:, 0])[None] - inter
    return inter / union.clamp(min=1e-9)


def temporal_nms(windows: torch.Tensor, scores: torch.Tensor, iou_thr: float,
                 max_keep: int = None) -> torch.Tensor:
    """Keep the best window, drop those overlapping it by ``> iou_thr``, repeat.

    Args:
        windows: ``(N, 2)`` start/end.
        scores: ``(N,)``.
        iou_thr: suppression threshold; ``>= 1`` keeps everything (sorted).
        max_keep: stop after this many kept windows.

    Returns:
        ``(K,)`` indices into ``windows``, by descending score.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    if iou_thr >= 1:
        return order[:max_keep]
    iou = window_iou(windows[order], windows[order])
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        if max_keep is not None and len(keep) >= max_keep:
            break
        suppressed |= iou[i] > iou_thr
    return order[torch.as_tensor(keep, dtype=torch.long)]
