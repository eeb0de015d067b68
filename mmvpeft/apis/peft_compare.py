"""Build one task config with each PEFT method and measure it: the table both papers print.

    rows = compare_methods('configs/tokenmix_msrvtt_retrieval.py', ['partial', 'token_mixing'])

Every method is measured in a fresh process, so the peak memory of one does not hide the
next (CPU: peak resident memory of that process; CUDA: peak allocated memory). A preset that
does not fit the config's towers (a layer beyond their depth, e.g. READ's -4 on a 2-block
tower) is skipped with the reason in its row (``skipped``); a preset that fails keeps its
error text in its row (``error``); the other rows are measured and kept either way.
"""
import copy
import glob
import json
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
import os.path as osp
from typing import Dict, List, Optional, Sequence

_READ4 = dict(type='READ', layers=(-4, -3, -2, -1), hidden_dim=32)

# name -> (video tower methods, text tower methods). Layers are those of the papers:
# token mixing / partial fine-tuning in the last block, READ in the last four.
METHOD_PRESETS: Dict[str, tuple] = {
    'linear_probe': ([dict(type='LinearProbe')], [dict(type='LinearProbe')]),
    'full': ([dict(type='FullFinetune')], [dict(type='FullFinetune')]),
    'partial': ([dict(type='PartialFinetune', layers=(-1, ))], []),
    'token_mixing': ([dict(type='TokenMixing', layers=(-1, ), alpha=0.8)], []),
    'bitfit': ([dict(type='BitFit')], [dict(type='BitFit')]),
    'lora': ([dict(type='LoRA', rank=8)], [dict(type='LoRA', rank=8)]),
    'houlsby': ([dict(type='HoulsbyAdapter', hidden_dim=64)], []),
    'st_adapter': ([dict(type='STAdapter', hidden_dim=64)], []),
    'vpt_deep': ([dict(type='VisualPrompt', num_tokens=8, deep=True)], []),
    'read': ([_READ4], [_READ4]),
    'token_mixing+read': ([dict(type='TokenMixing', layers=(-1, )), _READ4], [_READ4]),
}


def with_method(cfg, name: str):
    """A copy of ``cfg`` whose towers carry preset ``name`` (and only it)."""
    if name not in METHOD_PRESETS:
        raise KeyError(f'unknown PEFT preset {name!r}; presets: {sorted(METHOD_PRESETS)}')
    video, text = METHOD_PRESETS[name]
    cfg = copy.deepcopy(cfg)
    for key, methods in (('video_backbone', video), ('text_backbone', text)):
        tower = cfg.model.get(key)
        if tower is None:
            continue
        tower['peft'] = copy.deepcopy(methods)
        tower['adapter'] = None  # the legacy READ spelling would add a second READ
        tower['frozen'] = True
    has_read = any(m['type'] == 'READ' for m in video) and any(m['type'] == 'READ'
                                                                for m in text)
    if cfg.model.get('pvla_loss') and not has_read:
        cfg.model['pvla_loss'] = None  # PVLA needs READ states in both towers
    return cfg


def tower_depth(tower: dict, key: str) -> Optional[int]:
    """Blocks of a ``CLIPVisionBackbone`` / ``CLIPTextBackbone`` config (``key``:
    ``'video_backbone'`` or ``'text_backbone'``), from its ``model_cfg`` or its open_clip
    ``model_name``; None when the config does not say."""
    part = 'vision_cfg' if key == 'video_backbone' else 'text_cfg'
    model_cfg = tower.get('model_cfg')
    if model_cfg is None and tower.get('model_name'):
        import open_clip
        model_cfg = open_clip.get_model_config(tower['model_name'])
    layers = (model_cfg or {}).get(part, {}).get('layers')
    return layers if isinstance(layers, int) else None


def preset_misfit(cfg, name: str) -> Optional[str]:
    """Why preset ``name`` cannot be built on ``cfg``'s towers (a layer index beyond a
    tower's depth), or None when it fits (or the depth is unknown)."""
    video, text = METHOD_PRESETS[name]
    for key, methods in (('video_backbone', video), ('text_backbone', text)):
        tower = cfg.model.get(key)
        depth = None if tower is None else tower_depth(tower, key)
        if depth is None:
            continue
        for m in methods:
            layers = m.get('layers')
            bad = [i for i in (layers or ()) if not -depth <= i < depth]
            if bad:
                return (f'{m["type"]} layer(s) {bad} are beyond the {depth}-block '
                        f'{key.split("_")[0]} tower (valid {-depth}..{depth - 1})')
    return None


def _measure(config: str, cfg_options: Optional[dict], name: str, batch_size: int,
             num_clips: int, num_words: int, steps: int, device: str) -> dict:
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmvpeft.apis.benchmarking import benchmark_model
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmvpeft'))
    torch.set_num_threads(torch.get_num_threads())
    r = benchmark_model(with_method(cfg, name), batch_size, num_clips, num_words, steps,
                        device)
    return {k: v for k, v in r.items() if k not in ('model', 'inputs', 'param_rows')}


def final_metric(work_dir: str, metric: str) -> Optional[float]:
    """The last logged value of ``metric`` in an MMEngine work dir (``*/vis_data/scalars.json``)."""
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')),
                       reverse=True):
        value = None
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                if metric in row:
                    value = row[metric]
        if value is not None:
            return float(value)
    return None


def compare_methods(config: str, methods: Sequence[str], batch_size: int = 2,
                    num_clips: int = 8, num_words: int = 16, steps: int = 3,
                    device: str = 'cpu', cfg_options: Optional[dict] = None,
                    work_dirs: Optional[Dict[str, str]] = None, metric: Optional[str] = None,
                    isolate: bool = True) -> List[dict]:
    """One row per method: trainable parameters, share, step time, peak memory, metric.

    A method that does not fit the towers gets ``{'method', 'skipped': reason}``, one that
    fails ``{'method', 'error': 'Type: message'}``; neither stops the others.
    """
    from mmengine.config import Config
    rows = []
    ctx = mp.get_context('spawn')
    base = Config.fromfile(config)
    if cfg_options:
        base.merge_from_dict(cfg_options)
    for name in methods:
        if name not in METHOD_PRESETS:
            raise KeyError(f'unknown PEFT preset {name!r}; presets: {sorted(METHOD_PRESETS)}')
        reason = preset_misfit(base, name)
        if reason:
            rows.append(dict(method=name, skipped=reason))
            continue
        args = (config, cfg_options, name, batch_size, num_clips, num_words, steps, device)
        try:
            if isolate:
                # A process pool from concurrent.futures, not multiprocessing.Pool: if the
                # child dies (an import error, out of memory) this raises BrokenProcessPool,
                # where multiprocessing.Pool would respawn it and wait forever.
                with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                    r = pool.submit(_measure, *args).result()
            else:
                r = _measure(*args)
        except Exception as e:  # noqa: B902 - the row says what failed; the rest go on
            rows.append(dict(method=name, error=f'{type(e).__name__}: {e}'.splitlines()[0]))
            continue
        r['method'] = name
        if work_dirs and name in work_dirs and metric:
            r['metric'] = final_metric(work_dirs[name], metric)
        rows.append(r)
    return rows


def format_table(rows: List[dict], metric: Optional[str] = None) -> str:
    """A markdown table of :func:`compare_methods`' rows; skipped and failed methods show
    ``-`` and say why in a last ``note`` column."""
    measured = [r for r in rows if 'trainable' in r]
    mem_key = ('peak_mem_mib' if measured and 'peak_mem_mib' in measured[0] else
               'peak_rss_mib')
    mem_name = 'peak GPU MiB' if mem_key == 'peak_mem_mib' else 'peak RSS MiB'
    notes = any('trainable' not in r for r in rows)
    head = (['method', 'trainable', 'share', 'step ms', mem_name] + ([metric] if metric else [])
            + (['note'] if notes else []))
    lines = [' | '.join(head), ' | '.join('---' for _ in head)]
    for r in rows:
        if 'trainable' in r:
            cells = [r['method'], f'{r["trainable"]:,}',
                     f'{100 * r["trainable"] / r["total"]:.2f}%', f'{r["step_ms_median"]:.0f}',
                     f'{r[mem_key]:.0f}']
            if metric:
                cells.append('-' if r.get('metric') is None else f'{r["metric"]:.2f}')
            note = ''
        else:
            cells = [r['method']] + ['-'] * (len(head) - 1 - notes)
            note = (f'skipped: {r["skipped"]}' if 'skipped' in r else
                    f'failed: {r.get("error", "?")}').replace('|', '/')[:200]
        lines.append(' | '.join(cells + ([note] if notes else [])))
    return '\n'.join(lines)
