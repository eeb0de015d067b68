"""Generation speed with and without the decoder's key/value cache, in one run.

    python tools/benchmark_generation.py [CONFIG] [--batch-size 24] [--max-len 30]
                                         [--beam-size 3] [--rounds 3] [--device cpu|cuda]
                                         [--cfg-options KEY=VALUE ...]

The config (default ``configs/demo/caption_demo.py``; any ``VideoCaptioner`` config) is built
with random weights (pretrained towers and decoder are not loaded). A batch of random frames
(no text context) is encoded once; then greedy decoding and beam search decode exactly ``--max-len`` words per
video (EOT is forbidden before that, so both paths do the same work), with the cache
(``use_cache=True``) and without it (the whole prefix re-run at every step), alternating in
each round so both see the same machine load. The decoder's context length is raised to fit
``1 + max_len`` positions when the config's is shorter (random positional rows).

It prints the median time of each, the speed-ups, and whether the two paths gave identical
tokens (and the largest score difference), with the machine's load average before and after
(on a shared machine the ratios are trustworthy, the absolute times less so).
"""
import argparse
import statistics

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmvpeft.apis.benchmarking import (hardware_name, load_average, pipeline_image_size,
                                        timed)
from mmvpeft.apis.config_checks import CfgOptionsAction
from mmvpeft.registry import MODELS


def build(cfg, max_len: int, device: torch.device):
    """The config's model with random weights and a context that fits ``max_len``."""
    if cfg.model.get('type') != 'VideoCaptioner':
        raise ValueError(f'{cfg.filename}: benchmark_generation.py needs a VideoCaptioner '
                         f'model, got type={cfg.model.get("type")!r}')
    for key in ('video_backbone', 'text_backbone', 'decoder'):
        if cfg.model.get(key):
            cfg.model[key]['pretrained'] = None
    dec = cfg.model.decoder
    if dec.get('model_cfg') is None:
        raise ValueError(f'{cfg.filename}: the decoder has no model_cfg; this benchmark '
                         'builds a random decoder (set model.decoder.model_cfg)')
    dec.model_cfg['context_length'] = max(dec.model_cfg.get('context_length', 77), 1 + max_len)
    cfg.model.generation = dict(cfg.model.get('generation') or {}, max_len=max_len)
    torch.manual_seed(0)
    return MODELS.build(cfg.model).to(device).eval()


def run(cfg, batch_size: int, max_len: int, beam_size: int, rounds: int, device: str) -> dict:
    """Times the four decodings; returns medians, speed-ups and agreement."""
    dev = torch.device(device)
    load = load_average()
    model = build(cfg, max_len, dev)
    num_frames, size = cfg.get('num_frames', 8), pipeline_image_size(cfg)
    g = torch.Generator().manual_seed(0)
    inputs = dict(imgs=torch.randint(0, 256, (batch_size, num_frames, 1, 3, size, size),
                                     generator=g, dtype=torch.uint8).to(dev),
                  video_mask=torch.ones(batch_size, num_frames, dtype=torch.bool, device=dev))
    with torch.no_grad():
        enc = model.encode(inputs)
    memory, mask = enc['memory'], enc['memory_mask']
    dec = model.decoder
    settings = {'greedy': 1, f'beam {beam_size}': beam_size}
    times = {(s, c): [] for s in settings for c in (False, True)}
    outputs = {}
    for r in range(rounds + 1):  # round 0 warms up
        for name, beam in settings.items():
            order = (False, True) if r % 2 == 0 else (True, False)
            for cache in order:
                t, out = timed(lambda: dec.generate(
                    memory, mask, max_len=max_len, beam_size=beam, min_len=max_len,
                    use_cache=cache, return_scores=True), dev)
                if r:
                    times[(name, cache)].append(t)
                outputs[(name, cache)] = out
    result = dict(hardware=hardware_name(dev), batch_size=batch_size, memory_tokens=memory.shape[1],
                  max_len=max_len, rounds=rounds, settings={},
                  load=f'{load} -> {load_average()}')
    for name in settings:
        plain = statistics.median(times[(name, False)])
        cached = statistics.median(times[(name, True)])
        (tok_a, sc_a), (tok_b, sc_b) = outputs[(name, False)], outputs[(name, True)]
        result['settings'][name] = dict(
            plain_s=plain, cached_s=cached, speedup=plain / cached,
            identical=tok_a == tok_b,
            lengths=sorted({len(t) for t in tok_a}),
            max_score_diff=max(abs(a - b) for a, b in zip(sc_a, sc_b)))
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', default='configs/demo/caption_demo.py')
    parser.add_argument('--batch-size', type=int, default=24,
                        help='videos decoded together (the caption demo\'s val batch)')
    parser.add_argument('--max-len', type=int, default=30, help='words per video')
    parser.add_argument('--beam-size', type=int, default=3)
    parser.add_argument('--rounds', type=int, default=3, help='timed rounds after a warm-up')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction)
    args = parser.parse_args(argv)
    if args.max_len < 1 or args.beam_size < 2 or args.rounds < 1 or args.batch_size < 1:
        parser.error('--max-len, --rounds and --batch-size must be >= 1 and --beam-size >= 2')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope('mmvpeft')
    res = run(cfg, args.batch_size, args.max_len, args.beam_size, args.rounds, args.device)
    print(f'{args.config}: random weights, {res["batch_size"]} videos, '
          f'{res["memory_tokens"]} memory tokens each, {res["max_len"]} words, '
          f'median of {res["rounds"]} rounds, {res["hardware"]}, load average '
          f'{res["load"]}')
    for name, s in res['settings'].items():
        print(f'{name:>8}: no cache {s["plain_s"]:.3f} s, cache {s["cached_s"]:.3f} s, '
              f'speed-up {s["speedup"]:.1f}x, tokens identical: {s["identical"]} '
              f'(max score difference {s["max_score_diff"]:.1e})')
    return res


if __name__ == '__main__':
    main()
