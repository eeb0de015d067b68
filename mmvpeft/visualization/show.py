"""``tools/test.py --show-dir DIR --show-num N``: append the task's visualizer to the test
evaluator, so that the test run draws its own predictions."""
from typing import Optional

from mmengine.config import Config

# The visualizer of each task model (by class name, matched along the model's MRO so that
# a subclass gets its parent's).
SHOW_METRICS = {
    'MomentGrounder': 'MomentVisualizer',
    'VideoTextRetriever': 'RetrievalVisualizer',
    'VideoCaptioner': 'CaptionVisualizer',
    'VideoQA': 'QAVisualizer',
}


def show_metric_type(cfg: Config) -> dict:
    """The visualizer config of ``cfg``'s model: ``cfg.show_metric`` when the config sets
    one (a type name or a dict), else by the model's class (:data:`SHOW_METRICS`). A
    :class:`~mmvpeft.models.VideoCaptioner` that answers questions (``pred_key=
    'pred_answer'``) gets the QA picture.

    Raises:
        KeyError: a model type with no visualizer, naming it.
    """
    if cfg.get('show_metric'):
        show = cfg.show_metric
        return dict(show) if isinstance(show, dict) else dict(type=show)
    from mmvpeft.registry import MODELS
    model_type = cfg.model.get('type', '') if 'model' in cfg else ''
    model_cls = MODELS.get(model_type) if isinstance(model_type, str) else model_type
    for klass in getattr(model_cls, '__mro__', ()):
        if klass.__name__ in SHOW_METRICS:
            kind = SHOW_METRICS[klass.__name__]
            if kind == 'CaptionVisualizer':
                pred_key = cfg.model.get('pred_key', 'pred_text')
                if pred_key == 'pred_answer':
                    return dict(type='QAVisualizer')
                return dict(type=kind, pred_key=pred_key)
            return dict(type=kind)
    raise KeyError(f'--show-dir: no visualizer for model type {model_type!r}; set '
                   f'show_metric in the config (one of {sorted(set(SHOW_METRICS.values()))})')


def add_show_dir(cfg: Config, show_dir: str, show_num: int = 20,
                 metric: Optional[dict] = None) -> dict:
    """Append the task's visualizer (:func:`show_metric_type`) writing at most ``show_num``
    PNGs into ``show_dir`` to ``cfg.test_evaluator``; returns the appended config."""
    if int(show_num) < 1:
        raise ValueError(f'--show-num must be >= 1, got {show_num}')
    # Lazy: mmvpeft.apis builds on models and datasets, which this package does not need.
    # (The visualizers are registered by this package's __init__, which imports them.)
    from mmvpeft.apis.runner import append_test_metric
    show = dict(metric or show_metric_type(cfg), out_dir=show_dir, show_num=int(show_num))
    append_test_metric(cfg, show)
    return show
