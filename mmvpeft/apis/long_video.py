"""The ``long_video`` config switch: how test / val treat videos longer than the trained
length.

    long_video = dict(mode='sliding', window=128, stride=64)   # in a config

- ``mode='sliding'``: the val / test loaders keep every clip at the config's ``clip_len``
  (their ``max_clips`` is lifted) and the model predicts in overlapping windows of
  ``window`` clips (default: the loader's ``max_clips``, the trained length), ``stride``
  clips apart (default ``window // 2``), stitched (:mod:`mmvpeft.models.tasks.sliding_window`).
- ``mode='resample'`` (and no ``long_video`` at all): the earlier behaviour, a video of more
  than ``max_clips`` clips is re-cut into ``max_clips`` longer clips.

Other keys: ``batch_windows`` (windows per forward pass, 4), ``pre_nms_topk`` (1000),
``progress`` (a progress bar in ``init_grounder(...).predict``), ``feature_rate``
(``'resample'`` or ``'error'``: clip features at another rate than ``clip_len``).
The training pipeline is never changed.
"""
from typing import Optional

from mmengine.config import Config

from mmvpeft.models.tasks.sliding_window import check_long_video_cfg

CLIP_LOADERS = ('LoadVideoClips', 'LoadFrameFolder', 'LoadClipFeatures')


def _loader_steps(cfg: Config):
    for key in ('val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        pipeline = (loader or {}).get('dataset', {}).get('pipeline') or []
        for step in pipeline:
            if isinstance(step, dict) and step.get('type') in CLIP_LOADERS:
                yield key, step


def apply_long_video(cfg: Config) -> Optional[dict]:
    """Apply ``cfg.long_video`` to the val / test loaders and ``model.test_cfg``, in place.

    Returns:
        The checked ``long_video`` dict given to the model, or None (no switch, or
        ``mode='resample'``).

    Raises:
        ValueError: ``mode='sliding'`` with no ``window`` and no loader ``max_clips`` to take
            it from, or a bad key (naming ``long_video.<key>``).
    """
    raw = cfg.get('long_video')
    if not raw:
        return None
    if raw.get('mode', 'sliding') == 'resample':
        check_long_video_cfg(dict(raw), 'long_video')  # still refuse unknown keys
        return None
    lv = check_long_video_cfg({**dict(raw), 'window': 1, 'stride': 1}, 'long_video')
    window = raw.get('window')
    for _, step in _loader_steps(cfg):
        if window is None and step.get('max_clips'):
            window = int(step['max_clips'])
        step['max_clips'] = None  # every clip at clip_len: the model windows them
        if step['type'] == 'LoadClipFeatures':
            step['feature_rate'] = lv['feature_rate']
    if window is None:  # a config resolved before (an adapter file stores that one)
        window = ((cfg.model.get('test_cfg') or {}).get('long_video') or {}).get('window')
    if window is None:
        raise ValueError('long_video.window is not set and the val / test loaders have no '
                         'max_clips to take it from: set long_video.window to the number of '
                         'clips the model was trained on')
    lv = check_long_video_cfg({**dict(raw), 'window': window}, 'long_video')
    test_cfg = dict(cfg.model.get('test_cfg') or {})
    test_cfg['long_video'] = lv
    cfg.model['test_cfg'] = test_cfg
    return lv
