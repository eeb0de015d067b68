"""Cost of token mixing: training steps with mixing in a block vs the same partial
fine-tuning without mixing, interleaved in one process so both see the same machine load.

    python tools/benchmark_token_mixing.py [CONFIG] [--batch-size 2] [--num-frames 8]
                                           [--rounds 5] [--device cpu|cuda]

The config (default ``configs/tokenmix_msrvtt_retrieval.py``, random weights) is built twice:
as given (``TokenMixing`` in its blocks) and with ``PartialFinetune`` on the same blocks, so the
same parameters train. Each round times one step of each, in alternating order; the printed
ratio is the median over rounds of mixing / plain.
"""
import argparse
import copy
import statistics
import time

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmvpeft.apis.benchmarking import hardware_name, synthetic_batch
from mmvpeft.registry import MODELS


def _plain(cfg):
    cfg = copy.deepcopy(cfg)
    peft = cfg.model.video_backbone.peft
    cfg.model.video_backbone.peft = [
        dict(type='PartialFinetune', layers=m['layers']) if m['type'] == 'TokenMixing' else m
        for m in peft]
    return cfg


def _step(model, optim, inputs, samples, device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    total, _ = model.parse_losses(model(inputs, samples, mode='loss'))
    optim.zero_grad()
    total.backward()
    optim.step()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def run(cfg, batch_size, num_frames, rounds, device):
    dev = torch.device(device)
    for key in ('video_backbone', 'text_backbone'):
        cfg.model[key].pretrained = None
    if not any(m['type'] == 'TokenMixing' for m in cfg.model.video_backbone.peft):
        raise ValueError('the config has no TokenMixing method in its video backbone')
    models = {}
    for name, c in (('mixing', cfg), ('plain', _plain(cfg))):
        torch.manual_seed(0)
        model = MODELS.build(c.model).to(dev).train()
        params = [p for p in model.parameters() if p.requires_grad]
        models[name] = (model, torch.optim.AdamW(params, lr=1e-5),
                        sum(p.numel() for p in params))
    inputs, samples = synthetic_batch(cfg, batch_size, num_frames, 16, dev)
    times = {'mixing': [], 'plain': []}
    for name in models:  # warm-up
        _step(*models[name][:2], inputs, samples, dev)
    for r in range(rounds):
        order = ('mixing', 'plain') if r % 2 == 0 else ('plain', 'mixing')
        for name in order:
            times[name].append(_step(*models[name][:2], inputs, samples, dev))
    ratios = [m / p for m, p in zip(times['mixing'], times['plain'])]
    return dict(times=times, ratio_median=statistics.median(ratios), ratios=ratios,
                trainable={k: v[2] for k, v in models.items()}, hardware=hardware_name(dev))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', default='configs/tokenmix_msrvtt_retrieval.py')
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--num-frames', type=int, default=8)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    args = parser.parse_args(argv)
    init_default_scope('mmvpeft')
    r = run(Config.fromfile(args.config), args.batch_size, args.num_frames, args.rounds,
            args.device)
    print(f'{args.config} | {r["hardware"]} | batch {args.batch_size}, {args.num_frames} '
          f'frames, {args.rounds} rounds | torch {torch.__version__}')
    for name in ('plain', 'mixing'):
        t = r['times'][name]
        print(f'{name:>6}: trainable {r["trainable"][name]:,}, step median '
              f'{1e3 * statistics.median(t):.0f} ms (min {1e3 * min(t):.0f} ms)')
    print(f'mixing / plain per round: {", ".join(f"{x:.3f}" for x in r["ratios"])}; '
          f'median {r["ratio_median"]:.3f}x')
    return r


if __name__ == '__main__':
    main()
