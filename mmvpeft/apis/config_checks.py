"""Config handling that fails before training, not after an epoch (used by ``load_config``).

* :func:`read_config`: syntax errors name the config file (or the ``_base_`` file) and line.
* :func:`apply_knobs`: a top-level knob (``data_root``, ``clip_pretrained``, ...) changed in
  a child config or with ``--cfg-options`` reaches every field that used it.
* :func:`check_top_level_keys`: a top-level key that is not a Runner key but close to one
  (``trian_cfg``) is an error with a did-you-mean suggestion.
* :func:`check_hook_args`: unknown hook arguments are errors at load time.
* :func:`scale_schedule_to_epochs`: by-epoch LR schedules follow ``train_cfg.max_epochs``.
"""
import ast
import copy
import difflib
import inspect
import os.path as osp
from typing import Dict, Iterator, List, Optional, Tuple

from mmengine.config import Config, DictAction
from mmengine.logging import print_log

# Knob -> the field names that use it. A knob changed in a child config or with
# --cfg-options reaches every field of these names that still holds the knob's previous
# value (and was not itself set explicitly): paths stay relative in the configs and are
# joined to data_root by the datasets when they are built.
KNOBS: Dict[str, Tuple[str, ...]] = {
    'data_root': ('data_root', ),
    'clip_pretrained': ('pretrained', ),
    'clip_model_name': ('model_name', ),
    'clip_model': ('model_name', ),
    'max_clips': ('max_clips', ),
    'clip_len': ('clip_len', ),
    'max_epochs': ('max_epochs', ),
}

# What MMEngine's Runner reads (its constructor arguments), plus what Runner.from_cfg, the
# tools and MMEngine's config machinery read. Other top-level keys are user variables.
RUNNER_KEYS = (
    'model', 'work_dir', 'train_dataloader', 'val_dataloader', 'test_dataloader',
    'train_cfg', 'val_cfg', 'test_cfg', 'auto_scale_lr', 'optim_wrapper', 'param_scheduler',
    'val_evaluator', 'test_evaluator', 'default_hooks', 'custom_hooks', 'data_preprocessor',
    'load_from', 'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level', 'visualizer',
    'default_scope', 'randomness', 'experiment_name', 'model_wrapper_cfg', 'runner_type',
    'custom_imports', 'compile', 'scale_schedule')


def _check_syntax(path: str, seen: set) -> None:
    path = osp.abspath(path)
    if path in seen or not path.endswith('.py') or not osp.isfile(path):
        return
    seen.add(path)
    with open(path, encoding='utf-8') as f:
        text = f.read()
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as e:
        raise SyntaxError(f'config file {path}, line {e.lineno}: {e.msg}\n    '
                          f'{(e.text or "").rstrip()}') from None
    for node in tree.body:
        if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == '_base_'):
            try:
                bases = ast.literal_eval(node.value)
            except ValueError:
                return
            for base in [bases] if isinstance(bases, str) else bases:
                if '::' not in base:
                    _check_syntax(osp.join(osp.dirname(path), base), seen)


def _base_files(path: str) -> List[str]:
    bases = Config._get_base_files(path)
    return [osp.join(osp.dirname(path), b) for b in bases if '::' not in b]


def _walk_sites(cfg, ref, names, old, path='') -> Iterator[Tuple[object, object, str]]:
    """(container, key, dotted path) of fields named in ``names`` holding ``old`` in both
    ``cfg`` and the reference ``ref`` (walked in parallel)."""
    if isinstance(cfg, dict) and isinstance(ref, dict):
        for k, v in cfg.items():
            if k not in ref:
                continue
            sub = f'{path}.{k}' if path else str(k)
            if k in names and path and v == old and ref[k] == old:
                yield cfg, k, sub
            else:
                yield from _walk_sites(v, ref[k], names, old, sub)
    elif isinstance(cfg, (list, tuple)) and isinstance(ref, (list, tuple)):
        for i, (v, r) in enumerate(zip(cfg, ref)):
            yield from _walk_sites(v, r, names, old, f'{path}.{i}')


def _propagate(cfg, ref, knob: str, old, new) -> List[str]:
    cfg, ref = getattr(cfg, '_cfg_dict', cfg), getattr(ref, '_cfg_dict', ref)  # Config
    changed = []
    for container, key, where in list(_walk_sites(cfg, ref, KNOBS[knob], old)):
        container[key] = copy.deepcopy(new)
        changed.append(where)
    return changed


def read_config(path: str) -> Config:
    """``Config.fromfile`` with syntax errors that name the file and line, and knobs
    changed in a child config applied to the fields of its ``_base_`` files that used them.
    """
    _check_syntax(path, set())
    return _read_with_knobs(path)


def _read_with_knobs(path: str) -> Config:
    cfg = Config.fromfile(path)
    for base in _base_files(path):
        ref = _read_with_knobs(base)
        for knob in KNOBS:
            if knob in ref and knob in cfg and cfg[knob] != ref[knob]:
                changed = _propagate(cfg, ref, knob, ref[knob], cfg[knob])
                if changed:
                    print_log(f'{osp.basename(path)} sets {knob}={cfg[knob]!r}: applied to '
                              f'{", ".join(changed)}', logger='current')
    return cfg


def apply_knob_options(cfg: Config, before: Config, cfg_options: dict) -> None:
    """Carry knobs set with ``--cfg-options`` (``data_root=...``) into the fields that used
    their previous value; ``before`` is the config before the options were merged."""
    for knob in KNOBS:
        if knob in cfg_options and knob in before and before[knob] != cfg[knob]:
            changed = _propagate(cfg, before, knob, before[knob], cfg[knob])
            if changed:
                print_log(f'--cfg-options {knob}={cfg[knob]!r}: applied to '
                          f'{", ".join(changed)}', logger='current')


def check_top_level_keys(cfg: Config, config: str) -> None:
    """Flag top-level keys that look like a misspelt Runner key.

    The rule: a top-level key that is not a Runner key is a user variable (``data_root``,
    ``tiny_clip``, ...), unless it is within edit distance of a Runner key
    (``difflib`` ratio >= 0.8: ``trian_cfg``, ``optim_wraper``, ``param_schedulers``), which
    is almost always a typo that MMEngine would silently ignore. Names starting with ``_``
    are always helpers.

    Raises:
        KeyError: naming the key, the config file and the suggestion.
    """
    for key in cfg.keys():
        if key in RUNNER_KEYS or key in KNOBS or key.startswith('_'):
            continue
        close = difflib.get_close_matches(key, RUNNER_KEYS, n=1, cutoff=0.8)
        if close:
            raise KeyError(f'{config}: unknown top-level key "{key}"; did you mean '
                           f'"{close[0]}"? (MMEngine would ignore "{key}" and use the '
                           f'default {close[0]}; rename a helper variable to start with "_")')


# Top-level keys read outside the Runner's constructor: by mmvpeft, and by Runner.train /
# Runner.wrap_model (MMEngine 0.10.7), beside the Runner keys and the knobs.
TOOL_KEYS = ('prefix_cache', 'long_video', 'scale_schedule', 'dump_metric',
             'activation_checkpointing', 'efficient_conv_bn_eval', 'find_unused_parameters', 'sync_bn')


def _fields(node, path: str = '') -> Iterator[Tuple[str, object]]:
    """(dotted path, value) of every field below the top level, depth first."""
    items = node.items() if isinstance(node, dict) else (
        enumerate(node) if isinstance(node, (list, tuple)) else ())
    for k, v in items:
        sub = f'{path}.{k}' if path else str(k)
        yield sub, v
        yield from _fields(v, sub)


def check_option_keys(cfg: Config, cfg_options: dict, config: str) -> None:
    """Refuse a ``--cfg-options`` key that no field reads.

    A top-level key acts only if it is a Runner key, a knob (:data:`KNOBS`) or one of
    :data:`TOOL_KEYS`. Any other top-level key is either new (``num_frames=1`` where the
    config has no such variable) or a plain variable of the config file, whose value Python
    already copied into the fields that used it when the file was read: setting it changes
    nothing, so both are errors, like a misspelt key. Nested keys (``model.head.x``) are
    left to the builders, which name unknown arguments.

    Args:
        cfg: the config before the options are merged.
        cfg_options: the options, dotted key -> value.
        config: the config file, for the message.

    Raises:
        KeyError: naming the option, the config file and the fields that could be meant.
    """
    plain = getattr(cfg, '_cfg_dict', cfg)
    # Fields a Runner builds from (a helper variable's own copy is not one).
    fields = [(p, v) for p, v in _fields(plain) if '.' in p and p.split('.')[0] in RUNNER_KEYS]
    knobs = ', '.join(sorted(KNOBS))
    for key in cfg_options:
        top = key.split('.')[0]
        if top in RUNNER_KEYS or top in TOOL_KEYS or (top in KNOBS and top in cfg):
            continue
        named = [p for p, _ in fields if p.rsplit('.', 1)[-1] == top]
        if top in cfg:
            value = cfg[top]
            users = [p for p in named if _value_at(plain, p) == value]
            if not users and isinstance(value, (dict, list, tuple, str)):
                users = [p for p, v in fields if v == value]
            hint = (f'; set the fields that hold its value instead: {", ".join(users[:4])}'
                    if users else '')
            raise KeyError(f'--cfg-options {key}: "{top}" is a variable of {config}, not a '
                           'setting: its value was copied into the fields that use it when '
                           'the file was read, so changing it here would change '
                           f'nothing{hint} (top-level keys that act: the knobs {knobs} and '
                           'the Runner\'s keys)')
        what = ('a knob that this config does not use (it has no top-level variable of '
                'that name)' if top in KNOBS else 'unknown key')
        hint = f'; fields of that name: {", ".join(named[:4])}' if named else ''
        close = difflib.get_close_matches(top, list(RUNNER_KEYS) + list(KNOBS), n=1,
                                          cutoff=0.8)
        hint += f'; did you mean "{close[0]}"?' if close and top not in KNOBS else ''
        raise KeyError(f'--cfg-options {key}: no field of {config} reads a top-level '
                       f'"{top}" ({what}; the knobs are {knobs}){hint}')


def _value_at(plain: dict, path: str):
    node = plain
    for part in path.split('.'):
        node = node[int(part)] if isinstance(node, (list, tuple)) else node[part]
    return node


def _hook_configs(cfg: Config) -> Iterator[Tuple[str, dict]]:
    for name, hook in (cfg.get('default_hooks') or {}).items():
        if isinstance(hook, dict):
            yield f'default_hooks.{name}', hook
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        if isinstance(hook, dict):
            yield f'custom_hooks.{i}', hook


def _signature_keys(fn) -> Tuple[set, bool]:
    params = inspect.signature(fn).parameters.values()
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names - {'self'}, any(p.kind == p.VAR_KEYWORD for p in params)


def check_hook_args(cfg: Config) -> None:
    """Every hook argument must be one its class takes, checked against its signature when
    the config is loaded. MMEngine's ``CheckpointHook`` takes ``**kwargs`` and passes them to
    ``Runner.save_checkpoint`` at the first save (after an epoch): they are checked against
    that signature too.

    Raises:
        TypeError: naming the hook key, the argument, and the closest valid one.
    """
    from mmengine.hooks import CheckpointHook
    from mmengine.runner import Runner

    from mmvpeft.registry import HOOKS  # mmvpeft's hooks, falling back to MMEngine's
    for where, hook in _hook_configs(cfg):
        cls = hook.get('type')
        if isinstance(cls, str):
            cls = HOOKS.get(cls)
        if not inspect.isclass(cls):
            continue  # an unknown type is reported by the registry, naming it
        accepted, var_kw = _signature_keys(cls.__init__)
        if issubclass(cls, CheckpointHook):
            saved, _ = _signature_keys(Runner.save_checkpoint)
            accepted, var_kw = accepted | saved, False
        if var_kw:
            continue
        for arg in hook:
            if arg != 'type' and arg not in accepted and arg != 'priority':
                close = difflib.get_close_matches(arg, sorted(accepted), n=1, cutoff=0.6)
                hint = f'; did you mean "{close[0]}"?' if close else ''
                raise TypeError(f'{where} ({cls.__name__}): unknown argument "{arg}"{hint} '
                                f'(valid arguments: {sorted(accepted)})')


def _schedule_length(schedulers: List[dict]) -> Optional[float]:
    ends = [s.get('end') for s in schedulers if s.get('by_epoch', True)]
    ends = [e for e in ends if isinstance(e, (int, float)) and e < 1e8]
    return max(ends) if ends else None


def scale_schedule_to_epochs(cfg: Config) -> Optional[Tuple[float, int]]:
    """Stretch or shrink by-epoch ``param_scheduler`` phases to ``train_cfg.max_epochs``.

    A schedule is written for a length L (the largest ``end`` of its by-epoch phases, e.g. 40
    for warm-up [0, 2] + cosine [2, 40]). When the run has N != L epochs (``--cfg-options
    train_cfg.max_epochs=N``, or a child config changing only the epochs), every by-epoch
    ``begin`` / ``end`` is multiplied by N / L, so the warm-up keeps its share and the decay
    ends at the run's last epoch, at the schedule's final LR. Fractional epochs need
    ``convert_to_iter_based=True`` (set when the scaled bounds are not whole). Set
    ``scale_schedule=False`` at the top level to keep the schedule as written.

    Returns:
        ``(L, N)`` when the schedule was rescaled, else None.
    """
    train_cfg = cfg.get('train_cfg') or {}
    schedulers = cfg.get('param_scheduler')
    if not cfg.get('scale_schedule', True) or not schedulers or 'max_epochs' not in train_cfg:
        return None
    schedulers = [schedulers] if isinstance(schedulers, dict) else list(schedulers)
    length, epochs = _schedule_length(schedulers), train_cfg['max_epochs']
    if not length or epochs == length:
        return None
    factor = epochs / length

    def scaled(bound):
        if bound >= length:
            return epochs
        # Proportional, but a warm-up keeps at least one epoch (at most half the run), so a
        # very short run does not end up with a warm-up of zero iterations. A run of under
        # 2 epochs has no room for one: its inner bounds go to 0 (the warm-up is dropped as
        # empty below and the decay spans the run), since half an epoch can convert to 0
        # iterations when an epoch is one iteration.
        if epochs < 2 and bound > 0:
            return 0
        value = min(max(bound * factor, min(bound, 1)), epochs / 2) if bound > 0 else 0
        return int(value) if float(value).is_integer() else value

    kept = []
    for s in schedulers:
        if s.get('by_epoch', True):
            s = dict(s)
            for key in ('begin', 'end'):
                if isinstance(s.get(key), (int, float)) and s[key] < 1e8:
                    s[key] = scaled(s[key])
            if s.get('end', 1e9) <= s.get('begin', 0):
                print_log(f'param_scheduler: dropped {s["type"]}, empty in a run of {epochs} '
                          'epochs', logger='current')
                continue
            if any(isinstance(s.get(k), float) for k in ('begin', 'end')):
                s['convert_to_iter_based'] = True
        kept.append(s)
    schedulers = kept
    cfg.param_scheduler = schedulers
    print_log(f'param_scheduler written for {length:g} epochs, train_cfg.max_epochs={epochs}: '
              f'scaled every phase by {factor:g} (set scale_schedule=False to keep it)',
              logger='current')
    return length, epochs


def _split_top_level(text: str) -> List[str]:
    """Split at commas outside brackets and quotes."""
    parts, depth, quote, start = [], 0, None, 0
    for i, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in '\'"':
            quote = char
        elif char in '([':
            depth += 1
        elif char in ')]':
            depth -= 1
        elif char == ',' and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def parse_option_value(text: str):
    """One ``--cfg-options`` value, as MMEngine's ``DictAction`` reads it but keeping the
    characters inside a value.

    MMEngine removes every space of a value (``data_root=/x/v dir`` becomes ``/x/vdir``).
    Here only the spaces around a value or list item go; a value in matching quotes
    (``'a,b'``, which the shell passes on when quoted twice: ``"k='a,b'"``) is a string kept
    exactly; ``[a, b]`` / ``(a, b)`` / ``a,b`` are lists / tuples as in MMEngine; ``1``,
    ``1e-3``, ``true``, ``None`` are numbers, booleans and None.

    Args:
        text: the text after the first ``=``.

    Returns:
        str | int | float | bool | None | list | tuple.
    """
    value = text.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in '\'"':
        return value[1:-1]
    if (value[:1] in '([' or ',' in value) and (
            value.count('(') != value.count(')') or value.count('[') != value.count(']')):
        raise ValueError(f'unbalanced brackets in {text!r}')
    if value[:1] + value[-1:] in ('[]', '()'):
        inner = value[1:-1]
        items = [parse_option_value(v) for v in _split_top_level(inner)] \
            if inner.strip() else []
        return tuple(items) if value[0] == '(' else items
    parts = _split_top_level(value) if ',' in value else [value]
    if len(parts) > 1:
        return [parse_option_value(v) for v in parts]
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    if value.lower() in ('true', 'false'):
        return value.lower() == 'true'
    return None if value == 'None' else value


class CfgOptionsAction(DictAction):
    """``--cfg-options KEY=VALUE ...``: MMEngine's ``DictAction`` syntax, with values parsed by
    :func:`parse_option_value` (spaces and non-ASCII characters inside a value are kept), and
    an item that is not ``KEY=VALUE`` named (MMEngine's own fails with "not enough values to
    unpack")."""

    def __call__(self, parser, namespace, values, option_string=None):
        options = copy.copy(getattr(namespace, self.dest, None) or {})
        for kv in values or ():
            key, _, val = kv.partition('=')
            if '=' not in kv or not key.strip():
                parser.error(f'{option_string or "--cfg-options"}: {kv!r} is not KEY=VALUE '
                             '(e.g. train_cfg.max_epochs=5 or data_root=/data/tacos; '
                             'lists as key=[a,b])')
            try:
                options[key.strip()] = parse_option_value(val)
            except ValueError as e:
                parser.error(f'{option_string or "--cfg-options"}: {kv!r}: {e}')
        setattr(namespace, self.dest, options)
