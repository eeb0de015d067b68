"""Symmetric InfoNCE (CLIP) loss for text-video retrieval, optionally over all ranks."""
import warnings
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from mmvpeft.registry import MODELS
from mmvpeft.utils.dist import all_gather_with_grad, dist_world_size


@MODELS.register_module()
class SymmetricInfoNCELoss(nn.Module):
    """Mean of the video->text and text->video cross-entropies over ``logit_scale * V T^T``.

    Row ``i`` of ``video_embed`` and of ``text_embed`` form a positive pair; every other
    row of the batch is a negative (CLIP4Clip's and CLIP's loss)::

        logits = logit_scale * video @ text.T                         (N, N)
        loss   = (CE(logits, arange(N)) + CE(logits.T, arange(N))) / 2

    Distributed (``gather=True`` and an initialised process group of world size ``W > 1``):
    every rank gathers all ranks' embeddings *with gradient*
    (:func:`~mmvpeft.utils.dist.all_gather_with_grad`) and computes the loss above over the
    global batch ``N = sum_r B_r``, so negatives come from all ranks and every rank returns
    the same value, the global loss ``L``. Scaling, worked out: the gather's backward sums
    the ranks' gradients, so rank ``r``'s embeddings ``e_r`` get ``W * dL/de_r`` (W times
    their share) and its encoder gradient is ``W * (dL/de_r)(de_r/dtheta)``. DDP then
    averages over ranks: ``(1/W) sum_r W (dL/de_r)(de_r/dtheta) = dL/dtheta``. The
    ``logit_scale`` gradient is the full ``dL/ds`` on every rank (not gathered) and averages
    to itself. Hence no extra factor is needed:
    2 ranks with B each give exactly the gradient of 1 process with 2B (tested). A gather
    whose backward kept only the local gradient would instead give ``dL/dtheta / W`` for the
    encoders. Without a process group this is the plain single-batch loss.

    False negatives: in training a batch may hold two captions of one video (or two videos
    with the same caption). Pass ``pair_ids (B,)`` integers, equal for pairs that must not
    be each other's negatives (e.g. the dataset's ``video_index``, or ``zlib.crc32`` of the
    caption; never Python's ``hash`` of a str, which differs between processes): every
    off-diagonal logit between equal ids is removed from both softmaxes.

    Degenerate batches: with fewer than two distinct pairs (batch size 1, or every item the
    same video) there is no negative and the loss is exactly 0. On the first call that is a
    ``ValueError`` naming the batch size and ``train_dataloader.batch_size`` when it cannot
    be chance: a batch of one, or four or more items of one video. Otherwise (two or three
    captions of one video drawn together, a last short batch of an epoch) it is one warning.

    Args:
        loss_weight: Multiplier of the returned loss.
        gather: Use the negatives of all ranks when distributed.
    """

    def __init__(self, loss_weight: float = 1.0, gather: bool = True) -> None:
        super().__init__()
        self.loss_weight = float(loss_weight)
        self.gather = bool(gather)
        self._calls = 0  # the first call refuses a degenerate batch, later ones warn once
        self._warned = False

    def _check_pairs(self, batch: int, pair_ids: Optional[torch.Tensor]) -> None:
        """Fewer than two distinct pairs in the (global) batch: no negative, loss 0."""
        self._calls += 1
        distinct = batch if pair_ids is None else int(torch.unique(pair_ids).numel())
        if distinct >= 2:
            return
        world = dist_world_size() if self.gather else 1
        size = f'{batch} item(s)' + (f' over {world} processes' if world > 1 else '')
        msg = (f'contrastive batch of {size} holds {distinct} distinct (video, caption) '
               'pair(s): with fewer than two there is no negative, so loss_contrastive is 0 '
               'and nothing is learned. Set train_dataloader.batch_size to 2 or more (e.g. '
               '--cfg-options train_dataloader.batch_size=8) and train on at least two '
               'different videos.')
        # Two or three captions of one video can meet in a shuffled batch by chance.
        if self._calls == 1 and (batch < 2 or batch >= 4):
            raise ValueError(msg)
        if not self._warned:
            self._warned = True
            warnings.warn(msg + ' (a short or chance batch; this loss step is 0)')

    def forward(self, video_embed: torch.Tensor, text_embed: torch.Tensor,
                logit_scale: torch.Tensor,
                pair_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Loss of aligned pairs.

        Args:
            video_embed: ``(B, E)`` video embeddings (L2-normalised by the model).
            text_embed: ``(B, E)`` text embeddings of the matching captions, same order.
            logit_scale: Scalar tensor, the temperature's inverse, already ``exp``-ed and
                clamped by the model (CLIP: at most 100).
            pair_ids: Optional ``(B,)`` integer ids; pairs with equal ids are not negatives
                of each other (see the class docstring).

        Returns:
            torch.Tensor: Scalar loss (the global one when gathering).
        """
        if video_embed.ndim != 2 or video_embed.shape != text_embed.shape:
            raise ValueError(f'video_embed and text_embed must both be (B, E), got '
                             f'{tuple(video_embed.shape)} and {tuple(text_embed.shape)}')
        if pair_ids is not None:
            pair_ids = torch.as_tensor(pair_ids, device=video_embed.device).long()
            if pair_ids.shape != video_embed.shape[:1]:
                raise ValueError(f'pair_ids must be (B,) = ({len(video_embed)},), got '
                                 f'{tuple(pair_ids.shape)}')
        if self.gather and dist_world_size() > 1:
            video_embed = all_gather_with_grad(video_embed)
            text_embed = all_gather_with_grad(text_embed)
            if pair_ids is not None:
                pair_ids = all_gather_with_grad(pair_ids)  # integers: no gradient
        self._check_pairs(video_embed.shape[0], pair_ids)
        logits = logit_scale * video_embed @ text_embed.T
        labels = torch.arange(logits.shape[0], device=logits.device)
        if pair_ids is not None:
            same = pair_ids[:, None] == pair_ids[None, :]
            same.fill_diagonal_(False)
            logits = logits.masked_fill(same, float('-inf'))
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        return self.loss_weight * loss

    def extra_repr(self) -> str:
        return f'loss_weight={self.loss_weight}, gather={self.gather}'
