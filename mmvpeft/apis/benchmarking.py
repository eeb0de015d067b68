"""Synthetic batches and training-step timing shared by the benchmark and comparison tools."""
import platform
import resource
import statistics
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from mmvpeft.registry import MODELS
from mmvpeft.utils import parameter_report


def pipeline_image_size(cfg) -> int:
    """The crop size of the config's training pipeline (224 when it has none)."""
    for t in cfg.train_dataloader.dataset.get('pipeline', []):
        if t['type'] == 'VideoCenterCrop':
            return t['size']
    return 224


def _tokens(g, rows: int, num_words: int) -> Tuple[torch.Tensor, torch.Tensor]:
    # Words from the CLIP vocabulary between SOT and EOT (the largest id), all valid.
    tokens = torch.randint(1, 40000, (rows, num_words), generator=g)
    tokens[:, 0], tokens[:, -1] = 49406, 49407
    return tokens, torch.ones(rows, num_words, dtype=torch.bool)


def synthetic_batch(cfg, batch_size: int, num_clips: int, num_words: int,
                    device) -> Tuple[Dict[str, torch.Tensor], List[dict]]:
    """Random inputs of the shapes the config's model consumes, and matching samples.

    Grounding models (``MomentGrounder``) get ``num_clips`` clips of one frame and a
    ground-truth window; retrieval models (``VideoTextRetriever``) get ``num_clips`` frames
    per video and one caption per video.
    """
    g = torch.Generator().manual_seed(0)
    model_cfg = cfg.model
    size = pipeline_image_size(cfg)
    if model_cfg['type'] == 'VideoTextRetriever':
        tokens, text_mask = _tokens(g, batch_size, num_words)
        inputs = dict(imgs=torch.randint(0, 256, (batch_size, num_clips, 1, 3, size, size),
                                         generator=g, dtype=torch.uint8),
                      video_mask=torch.ones(batch_size, num_clips, dtype=torch.bool),
                      text_tokens=tokens, text_mask=text_mask,
                      text_video_index=torch.arange(batch_size))
        samples = [dict(vid=f'v{i}', caption_ids=[f'v{i}#0']) for i in range(batch_size)]
        return {k: v.to(device) for k, v in inputs.items()}, samples

    inputs = dict(video_mask=torch.ones(batch_size, num_clips, dtype=torch.bool),
                  text_mask=torch.ones(batch_size, num_words, dtype=torch.bool))
    if model_cfg.get('video_backbone'):
        inputs['imgs'] = torch.randint(0, 256, (batch_size, num_clips, 1, 3, size, size),
                                       generator=g, dtype=torch.uint8)
    else:
        inputs['video_feat'] = torch.randn(batch_size, num_clips,
                                           model_cfg.encoder.video_dim, generator=g)
    if model_cfg.get('text_backbone'):
        inputs['text_tokens'] = _tokens(g, batch_size, num_words)[0]
    else:
        inputs['text_feat'] = torch.randn(batch_size, num_words,
                                          model_cfg.encoder.text_dim, generator=g)
    clip_len, duration = 2.0, 2.0 * num_clips
    samples = [dict(qid=i, gt_windows=np.array([[0.25 * duration, 0.5 * duration]]),
                    clip_len=clip_len, num_clips=num_clips, duration=duration)
               for i in range(batch_size)]
    return {k: v.to(device) for k, v in inputs.items()}, samples


def load_average() -> str:
    """The 1, 5 and 15 minute load averages of ``/proc/loadavg`` ('n/a' where there is
    none): printed beside timings taken on a machine other jobs may share."""
    try:
        with open('/proc/loadavg') as f:
            return ' '.join(f.read().split()[:3])
    except OSError:
        return 'n/a'


def timed(fn, device: torch.device) -> Tuple[float, object]:
    """``(seconds, fn())``, with CUDA work finished before and after the clock reads."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, out


def hardware_name(dev: torch.device) -> str:
    if dev.type == 'cuda':
        return torch.cuda.get_device_name(dev)
    return f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads'


def prefix_inputs(model: torch.nn.Module, inputs: dict, dtype=torch.float16) -> dict:
    """``inputs`` as a frozen-prefix cache would feed them: ``imgs`` / ``text_tokens``
    replaced by the states entering each tower's first adapted block, stored in ``dtype``
    (the cache's float16 default; the towers cast them back)."""
    out = dict(inputs)
    if 'imgs' in out and getattr(model, 'video_backbone', None) is not None:
        out['video_prefix'] = model.video_backbone.forward_prefix(out.pop('imgs')).to(dtype)
    if 'text_tokens' in out and getattr(model, 'text_backbone', None) is not None:
        out['text_prefix'] = model.text_backbone.forward_prefix(
            out.pop('text_tokens'), out['text_mask']).to(dtype)
    return out


def compile_blocks(model: torch.nn.Module) -> int:
    """``torch.compile`` every transformer block of the model's towers in place (parameter
    names unchanged); returns how many. Blocks are where a step spends its time, and
    compiling them one by one avoids graph breaks on the towers' Python control flow."""
    n = 0
    for module in model.modules():
        if hasattr(module, 'peft_methods') and hasattr(module, 'blocks'):
            for block in module.blocks():
                block.compile()
                n += 1
    return n


def time_training_steps(model: torch.nn.Module, inputs: dict, samples: list, steps: int,
                        device: torch.device, lr: float = 1e-4, amp: bool = False,
                        rounds: Optional[List[dict]] = None) -> dict:
    """Median/min time of full training steps (forward, backward, AdamW), after one warm-up.

    ``amp`` runs forward and loss under bfloat16 autocast (CPU or CUDA; PVLA's solver opts
    out). ``rounds``: a list of input dicts to alternate between step by step (A/B
    interleaving on a noisy machine); the result then has per-round ``round_ms_median``.

    Returns:
        dict: ``step_ms_median``, ``step_ms_min``, ``losses`` (of the last step), and
        ``peak_mem_mib`` (CUDA, allocated) or ``peak_rss_mib`` / ``peak_rss_growth_mib``
        (CPU, the whole process's peak resident memory).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=lr)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    variants = rounds or [inputs]
    times = [[] for _ in variants]
    for step in range(steps + 1):  # the first step (of each variant) warms up
        for v, batch in enumerate(variants):
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                losses = model(batch, samples, mode='loss')
                total, _ = model.parse_losses(losses)
            optim.zero_grad()
            total.backward()
            optim.step()
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
            if step:
                times[v].append(time.perf_counter() - start)
    out = dict(step_ms_median=1e3 * statistics.median(times[0]),
               step_ms_min=1e3 * min(times[0]), losses=losses)
    if rounds:
        out['round_ms_median'] = [1e3 * statistics.median(t) for t in times]
        out['round_ms_min'] = [1e3 * min(t) for t in times]
    if device.type == 'cuda':
        out['peak_mem_mib'] = torch.cuda.max_memory_allocated(device) / 2**20
    else:  # ru_maxrss is in KiB on Linux
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out['peak_rss_mib'] = peak / 1024
        out['peak_rss_growth_mib'] = (peak - rss_before) / 1024
    return out


def saved_bytes(model: torch.nn.Module, fn) -> Tuple[int, object]:
    """Bytes a forward keeps for backward, counted exactly; returns ``(bytes, fn())``.

    Every tensor autograd saves while ``fn()`` runs passes through a
    ``torch.autograd.graph.saved_tensors_hooks`` pack hook, and every input of a region
    checkpointed inside (:mod:`mmvpeft.models.peft.checkpoint`) is reported too: a
    checkpointed region holds its inputs, not its activations, until backward. The result is
    the sum of ``nbytes`` over the distinct storages among them (views of one storage count
    once), leaving out ``model``'s parameters and buffers (weights are held anyway). It
    depends only on the model, the inputs and the code path, not on the machine or allocator.

    Args:
        model: the model whose weights are left out.
        fn: runs the forward (and the loss) whose graph is measured; its return value is
            passed back, so the caller can run backward on it.
    """
    from mmvpeft.models.peft.checkpoint import observe_checkpoint_inputs

    def key(t: torch.Tensor):
        st = t.untyped_storage()
        return (t.device.type, t.device.index, st.data_ptr()), st.nbytes()

    weights = {key(t)[0] for t in list(model.parameters()) + list(model.buffers())}
    seen: Dict[tuple, int] = {}

    def record(t: torch.Tensor) -> None:
        if t.layout != torch.strided or t.device.type == 'meta':
            return
        k, n = key(t)
        if k not in weights and n:
            seen[k] = n

    def pack(t):
        record(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            observe_checkpoint_inputs(record):
        out = fn()
    return sum(seen.values()), out


def set_grad_checkpointing(model: torch.nn.Module, enabled: bool) -> List[str]:
    """Turns activation checkpointing on or off in every part of ``model`` that has the switch
    (CLIP towers, the decoder: ``set_grad_checkpointing``; the cross-modal encoder:
    ``grad_checkpointing``); returns their names."""
    names = []
    for name, module in model.named_modules():
        if hasattr(module, 'set_grad_checkpointing') and hasattr(module, 'blocks'):
            module.set_grad_checkpointing(enabled)
            names.append(name)
        elif type(module).__name__ == 'CrossModalEncoder':
            module.grad_checkpointing = bool(enabled)
            names.append(name)
    return names


def benchmark_model(cfg, batch_size: int, num_clips: int, num_words: int, steps: int,
                    device: str, inputs: Optional[tuple] = None, prefix_cache: bool = False,
                    amp: bool = False, compile: bool = False) -> dict:
    """Builds ``cfg.model`` and times training steps on synthetic (or given) inputs.

    With ``prefix_cache`` the steps alternate between the decoded inputs and the same batch
    as a float16 frozen-prefix cache feeds it (:func:`prefix_inputs`), and the result adds
    ``cached_step_ms_median`` and ``cache_speedup`` (ratio of the medians). ``amp``: bfloat16
    autocast; ``compile``: :func:`compile_blocks`.
    """
    torch.manual_seed(0)
    dev = torch.device(device)
    model = MODELS.build(cfg.model).to(dev).train()
    rows, table = parameter_report(model)
    inputs, samples = inputs or synthetic_batch(cfg, batch_size, num_clips, num_words, dev)
    compiled = compile_blocks(model) if compile else 0
    rounds = None
    if prefix_cache:
        with torch.no_grad():
            rounds = [inputs, prefix_inputs(model, inputs)]
    result = time_training_steps(model, inputs, samples, steps, dev, amp=amp, rounds=rounds)
    result.update(amp=amp, compiled_blocks=compiled)
    if prefix_cache:
        result['cached_step_ms_median'] = result['round_ms_median'][1]
        result['cached_step_ms_min'] = result['round_ms_min'][1]
        result['cache_speedup'] = result['round_ms_median'][0] / result['round_ms_median'][1]
        result['prefix_start'] = {t.tower_kind: t.prefix_start() for t in model.towers()}
    result.update(device=str(dev), hardware=hardware_name(dev), trainable=rows[-1][1],
                  total=rows[-1][2], param_table=table, param_rows=rows,
                  loss_keys=list(result.pop('losses')),
                  input_shapes={k: tuple(v.shape) for k, v in inputs.items()})
    result['model'] = model
    result['inputs'] = inputs
    return result


def _current_rss_mib() -> float:
    """Resident memory of this process now (Linux ``/proc/self/statm``), MiB."""
    import os
    with open('/proc/self/statm') as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf('SC_PAGE_SIZE') / 2**20


def memory_setting(cfg, batch_size: int, num_clips: int, num_words: int, device: str,
                   checkpointing: bool, prefix_cache: bool, lr: float = 1e-4) -> dict:
    """Memory of one training step (forward, backward, AdamW) in one setting.

    Builds ``cfg.model``, turns activation checkpointing on or off in every part that has the
    switch (:func:`set_grad_checkpointing`), and feeds a synthetic batch of ``num_clips``
    clips (frames) per video, decoded or, with ``prefix_cache``, as a float16 frozen-prefix
    cache would feed it (:func:`prefix_inputs`).

    Returns:
        dict: ``saved_bytes`` (:func:`saved_bytes` of the forward and losses: exact, the
        same on every machine for one device type), ``rss_before_mib`` (this process's
        resident memory before the step), ``peak_rss_mib`` (``ru_maxrss``: the peak of the
        whole process so far, building the model included; run each setting in a fresh
        process to compare them), on CUDA ``peak_allocated_mib``
        (``torch.cuda.max_memory_allocated`` over the step), ``prefix_start`` (per tower,
        with ``prefix_cache``), ``checkpointed`` (the parts switched) and ``losses``.
    """
    torch.manual_seed(0)
    dev = torch.device(device)
    model = MODELS.build(cfg.model).to(dev).train()
    parts = set_grad_checkpointing(model, checkpointing)
    if checkpointing and not parts:
        raise ValueError('the model has no part with an activation-checkpointing switch')
    inputs, samples = synthetic_batch(cfg, batch_size, num_clips, num_words, dev)
    out = dict(checkpointed=parts if checkpointing else [], num_clips=num_clips,
               batch_size=batch_size, checkpointing=checkpointing, prefix_cache=prefix_cache)
    if prefix_cache:
        starts = {t.tower_kind: t.prefix_start() for t in model.towers()}
        if not any(starts.values()):
            raise ValueError('no tower of this model has a frozen prefix to cache (every '
                             'tower trains from block 0)')
        with torch.no_grad():
            inputs = prefix_inputs(model, inputs)
        out['prefix_start'] = starts
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=lr)
    if dev.type == 'cuda':
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    out['rss_before_mib'] = _current_rss_mib()

    def forward():
        losses = model(inputs, samples, mode='loss')
        return losses, model.parse_losses(losses)[0]

    out['saved_bytes'], (losses, total) = saved_bytes(model, forward)
    optim.zero_grad()
    total.backward()
    optim.step()
    if dev.type == 'cuda':
        torch.cuda.synchronize(dev)
        out['peak_allocated_mib'] = torch.cuda.max_memory_allocated(dev) / 2**20
    out['peak_rss_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out['losses'] = {k: float(v.detach()) for k, v in losses.items()}
    return out


def memory_setting_from_file(config: str, cfg_options: Optional[dict], **kwargs) -> dict:
    """:func:`memory_setting` on ``config`` (a path) with ``cfg_options`` merged: what a fresh
    process runs, so its peak resident memory is this setting's alone."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmvpeft'))
    return memory_setting(cfg, **kwargs)


def memory_settings(config: str, cfg_options: Optional[dict], clips: List[int],
                    batch_size: int, num_words: int, device: str,
                    checkpointing=(False, True), prefix_cache=(False, True),
                    fresh_process: bool = True, on_result=None) -> List[dict]:
    """:func:`memory_setting` for every combination of ``clips`` x ``checkpointing`` x
    ``prefix_cache``, each in a fresh (spawned) process unless ``fresh_process=False``.

    A setting that cannot run (a prefix cache for a model whose towers all train from block
    0) gives a dict with ``error`` instead. ``on_result(dict)`` is called as each finishes.
    """
    import concurrent.futures
    import multiprocessing

    results = []
    for n in clips:
        for cache in prefix_cache:
            for ckpt in checkpointing:
                kwargs = dict(batch_size=batch_size, num_clips=n, num_words=num_words,
                              device=device, checkpointing=ckpt, prefix_cache=cache)
                try:
                    if fresh_process:
                        ctx = multiprocessing.get_context('spawn')
                        with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as ex:
                            r = ex.submit(memory_setting_from_file, config, cfg_options,
                                          **kwargs).result()
                    else:
                        r = memory_setting_from_file(config, cfg_options, **kwargs)
                except ValueError as e:
                    r = dict(num_clips=n, checkpointing=ckpt, prefix_cache=cache, error=str(e))
                r['fresh_process'] = fresh_process
                results.append(r)
                if on_result is not None:
                    on_result(r)
    return results


def decode_vs_cache(cfg, video_path: str, num_clips: int, repeat: int = 3,
                    width: Optional[int] = None, num_tokens: Optional[int] = None) -> dict:
    """Seconds to decode one video with the config's training transforms against loading
    its frozen-prefix cache file (float16 ``(T, N, D)`` frames, written to a temporary folder).

    The video is read as ``duration = num_clips * clip_len`` seconds, so it yields
    ``num_clips`` clips. ``width`` / ``num_tokens`` default to ViT-B/32 at the pipeline's
    image size (768, 1 + (size / 32)^2).
    """
    import os.path as osp
    import tempfile

    from mmcv.transforms import Compose

    from mmvpeft.apis.prefix_cache import split_pipeline
    from mmvpeft.datasets.transforms.prefix_loading import video_files

    video_tf, _ = split_pipeline(cfg.train_dataloader.dataset.pipeline)
    if not video_tf:
        raise ValueError('the config decodes no video (no LoadVideoClips / LoadFrameFolder)')
    clip_len = float(video_tf[0].get('clip_len', 2.0))
    load = Compose(video_tf)
    info = dict(video_path=video_path, vid='bench', qid=0, duration=num_clips * clip_len)
    decode = []
    for _ in range(repeat + 1):
        start = time.perf_counter()
        out = load(dict(info))
        decode.append(time.perf_counter() - start)
    t = len(out['imgs'])
    size = pipeline_image_size(cfg)
    n = num_tokens or 1 + (size // 32)**2
    d = width or 768
    with tempfile.TemporaryDirectory() as tmp:
        path = video_files(tmp, info['vid'])[0]
        np.save(path, np.zeros((t, n, d), np.float16))
        cached = []
        for _ in range(repeat + 1):
            start = time.perf_counter()
            np.ascontiguousarray(np.load(path, mmap_mode='r')[np.arange(t)])
            cached.append(time.perf_counter() - start)
        nbytes = osp.getsize(path)
    return dict(num_clips=t, decode_s=statistics.median(decode[1:]),
                cache_load_s=statistics.median(cached[1:]), cache_file_mib=nbytes / 2**20)
