"""SymmetricInfoNCELoss: plain value, and exact DDP gradients with gathered negatives.

The distributed test spawns 2 gloo processes on CPU; each wraps the same tiny two-tower
linear model in DDP, computes the loss on its half of the batch and backpropagates. After
DDP's gradient averaging the parameter gradients must equal those of one process on the
whole batch (float64, atol 1e-10). A control run with a gather that passes only the local
gradient shows the comparison can fail: its encoder gradients are 1/W of the truth.
"""
import os
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from mmvpeft.models.losses.contrastive_loss import SymmetricInfoNCELoss
from mmvpeft.registry import MODELS
from mmvpeft.utils.dist import all_gather_with_grad

WORLD_SIZE = 2
# Per-rank batch sizes of the two runs: equal, and unequal (a ragged last batch).
SPLITS = ((4, 4), (3, 5))
# None, and ids with a duplicate across the two ranks (rows 1 and 6) and one within rank 1.
PAIR_IDS = {(4, 4): None, (3, 5): torch.tensor([0, 1, 2, 3, 4, 4, 1, 5])}


def reference_loss(v, t, scale):
    logits = scale * v @ t.T
    labels = torch.arange(len(v))
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def test_plain_loss_value_and_weight():
    g = torch.Generator().manual_seed(0)
    v = F.normalize(torch.randn(5, 8, generator=g, dtype=torch.float64), dim=-1)
    t = F.normalize(torch.randn(5, 8, generator=g, dtype=torch.float64), dim=-1)
    scale = torch.tensor(20.0, dtype=torch.float64)
    loss = MODELS.build(dict(type='SymmetricInfoNCELoss'))
    assert loss.gather  # no process group here: gathering is a no-op
    ref = reference_loss(v, t, scale)
    torch.testing.assert_close(loss(v, t, scale), ref)
    # Symmetric in its two inputs; differs from the one-directional CE on this data.
    torch.testing.assert_close(loss(t, v, scale), ref)
    assert not torch.isclose(ref, F.cross_entropy(scale * v @ t.T, torch.arange(5)))
    torch.testing.assert_close(SymmetricInfoNCELoss(loss_weight=0.5)(v, t, scale), ref / 2)
    # Aligned pairs with a large scale give ~0; a shuffled pairing does not.
    assert loss(v, v, torch.tensor(100.0)) < 1e-6
    assert loss(v, v.roll(1, 0), torch.tensor(100.0)) > 1
    with pytest.raises(ValueError, match=r'\(B, E\)'):
        loss(v, t[:4], scale)


def test_pair_ids_remove_false_negatives():
    g = torch.Generator().manual_seed(2)
    v = F.normalize(torch.randn(4, 8, generator=g, dtype=torch.float64), dim=-1)
    t = F.normalize(torch.randn(4, 8, generator=g, dtype=torch.float64), dim=-1)
    scale = torch.tensor(10.0, dtype=torch.float64)
    loss = SymmetricInfoNCELoss()
    # Distinct ids change nothing; pairs 0 and 2 sharing an id drop logits (0, 2) and (2, 0).
    torch.testing.assert_close(loss(v, t, scale, pair_ids=torch.arange(4)),
                               reference_loss(v, t, scale))
    logits = scale * v @ t.T
    keep = [[0, 1, 3], [0, 1, 2, 3], [1, 2, 3], [0, 1, 2, 3]]  # columns (rows) each sees

    def ce(mat):
        return torch.stack([-(mat[i, i] - mat[i, cols].logsumexp(0))
                            for i, cols in enumerate(keep)]).mean()
    hand = (ce(logits) + ce(logits.T)) / 2
    out = loss(v, t, scale, pair_ids=torch.tensor([7, 1, 7, 3]))
    torch.testing.assert_close(out, hand)
    assert not torch.isclose(out, reference_loss(v, t, scale))
    with pytest.raises(ValueError, match='pair_ids'):
        loss(v, t, scale, pair_ids=torch.arange(3))


class TwoTower(nn.Module):
    """Stand-in for the retrieval model: two linear encoders and a learned temperature."""

    def __init__(self):
        super().__init__()
        self.video = nn.Linear(6, 4)
        self.text = nn.Linear(5, 4)
        self.log_scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, xv, xt):
        return (F.normalize(self.video(xv), dim=-1), F.normalize(self.text(xt), dim=-1),
                self.log_scale.exp().clamp(max=100))


def make_model_and_data(total):
    torch.manual_seed(0)
    model = TwoTower().double()
    g = torch.Generator().manual_seed(1)
    xv = torch.randn(total, 6, generator=g, dtype=torch.float64)
    xt = torch.randn(total, 5, generator=g, dtype=torch.float64)
    return model, xv, xt


def grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}


class LocalOnlyGather(torch.autograd.Function):
    """The control: gathers like all_gather_with_grad but backward keeps the local part."""

    @staticmethod
    def forward(ctx, x, sizes, rank):
        out = [x.new_zeros((max(sizes), ) + x.shape[1:]) for _ in sizes]
        padded = x.new_zeros((max(sizes), ) + x.shape[1:])
        padded[:len(x)] = x
        dist.all_gather(out, padded)
        ctx.start, ctx.n = sum(sizes[:rank]), len(x)
        return torch.cat([o[:n] for o, n in zip(out, sizes)])

    @staticmethod
    def backward(ctx, grad):
        return grad[ctx.start:ctx.start + ctx.n], None, None


def worker(rank, port, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=WORLD_SIZE)
    try:
        results = {}
        for split in SPLITS:
            model, xv, xt = make_model_and_data(sum(split))
            lo, hi = sum(split[:rank]), sum(split[:rank + 1])
            ddp = nn.parallel.DistributedDataParallel(model)
            v, t, s = ddp(xv[lo:hi], xt[lo:hi])
            ids = None if PAIR_IDS[split] is None else PAIR_IDS[split][lo:hi]
            loss = SymmetricInfoNCELoss()(v, t, s, pair_ids=ids)
            loss.backward()
            # The gather itself: rows in rank order, values intact.
            gathered = all_gather_with_grad(v.detach())
            results[split] = dict(loss=loss.detach(), grads=grads(model), gathered=gathered)

            model, xv, xt = make_model_and_data(sum(split))
            ddp = nn.parallel.DistributedDataParallel(model)
            v, t, s = ddp(xv[lo:hi], xt[lo:hi])
            v = LocalOnlyGather.apply(v, list(split), rank)
            t = LocalOnlyGather.apply(t, list(split), rank)
            SymmetricInfoNCELoss(gather=False)(v, t, s, pair_ids=PAIR_IDS[split]).backward()
            results[split]['control_grads'] = grads(model)
        torch.save(results, os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_ddp_gradients_equal_single_process_double_batch(tmp_path):
    # fork: the children inherit the imported modules (spawn would re-import mmvpeft in each,
    # ~10 s); no process group exists in the parent, and each child uses one thread.
    ctx = mp.start_processes(worker, args=(free_port(), str(tmp_path)), nprocs=WORLD_SIZE,
                             join=False, start_method='fork')
    deadline = time.time() + 180
    while not ctx.join(timeout=5):
        if time.time() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail('gloo workers did not finish within 180 s')
    ranks = [torch.load(tmp_path / f'rank{r}.pt') for r in range(WORLD_SIZE)]

    for split in SPLITS:
        model, xv, xt = make_model_and_data(sum(split))
        v, t, s = model(xv, xt)
        ref_loss = SymmetricInfoNCELoss()(v, t, s, pair_ids=PAIR_IDS[split])
        ref_loss.backward()
        ref = grads(model)
        torch.testing.assert_close(ranks[0][split]['gathered'], v.detach(), rtol=0, atol=1e-12)
        for r in range(WORLD_SIZE):
            out = ranks[r][split]
            # Every rank reports the global loss.
            torch.testing.assert_close(out['loss'], ref_loss.detach(), rtol=0, atol=1e-12)
            for name, g in ref.items():
                torch.testing.assert_close(out['grads'][name], g, rtol=0, atol=1e-10,
                                           msg=f'{split} rank {r} {name}')
            # Control: encoder gradients come out 1/W too small without the summed backward.
            for name in ('video.weight', 'text.weight'):
                assert not torch.allclose(out['control_grads'][name], ref[name], atol=1e-6)
                torch.testing.assert_close(out['control_grads'][name], ref[name] / WORLD_SIZE,
                                           rtol=0, atol=1e-10)
        assert ref['video.weight'].abs().max() > 1e-3  # non-trivial gradients


def test_fewer_than_two_distinct_pairs_fail_at_the_first_step():
    g = torch.Generator().manual_seed(3)
    v = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
    t = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
    scale = torch.tensor(10.0)
    # Batch size 1: no negative, the loss would be exactly 0 at every step.
    with pytest.raises(ValueError, match=r'batch of 1 item\(s\) holds 1 distinct .*'
                                         r'train_dataloader\.batch_size'):
        SymmetricInfoNCELoss()(v[:1], t[:1], scale)
    # Four items of one video (equal pair ids): the same, whatever the batch size.
    with pytest.raises(ValueError, match=r'batch of 4 item\(s\) holds 1 distinct'):
        SymmetricInfoNCELoss()(v, t, scale, pair_ids=torch.zeros(4, dtype=torch.long))
    # Two captions of one video can meet by chance in a shuffled first batch: a warning.
    with pytest.warns(UserWarning, match='batch of 2 item'):
        assert SymmetricInfoNCELoss()(v[:2], t[:2], scale,
                                      pair_ids=torch.zeros(2, dtype=torch.long)) == 0
    # After a proper first step, a short last batch warns once and counts 0.
    loss = SymmetricInfoNCELoss()
    assert loss(v, t, scale) > 0
    with pytest.warns(UserWarning, match='a short or chance batch'):
        assert loss(v[:1], t[:1], scale) == 0
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        loss(v[:1], t[:1], scale)
