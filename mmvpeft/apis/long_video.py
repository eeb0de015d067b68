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
(``'resample'`` or ``'error'``: clip features at another rate than ``clip_len``), ``stream``
(default True: ``tools/test.py`` and validation read frame pipelines window by window;
False decodes each video whole and lets the model window it).
The training pipeline is never changed.

Frames are streamed: with ``mode='sliding'`` the val / test loops become
:class:`~mmvpeft.engine.loops.LongVideoValLoop` / ``LongVideoTestLoop`` when their pipeline
reads frames (``LoadVideoClips``, ``LoadFrameFolder``). Their loader then decodes nothing;
:func:`predict_in_windows` (which ``init_grounder(...).predict`` runs too) reads each
window of a video once for all of its queries in the batch, runs the rest of the test
pipeline on it and stitches. Clip-feature pipelines keep whole videos in memory (a
feature row is small) and the model windows them.
"""
from typing import TYPE_CHECKING, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config

from mmvpeft.datasets.collate import video_query_collate
from mmvpeft.models.tasks.sliding_window import (WindowStitcher, check_long_video_cfg,
                                                 finish_prediction, plan_windows)

if TYPE_CHECKING:
    from mmvpeft.datasets.transforms.video_stream import ClipStream

CLIP_LOADERS = ('LoadVideoClips', 'LoadFrameFolder', 'LoadClipFeatures')


# Loaders whose clips a streaming loop reads window by window.
STREAM_LOADERS = ('LoadVideoClips', 'LoadFrameFolder')
# The loop each MMEngine loop becomes when its pipeline streams.
_STREAM_LOOPS = {'val_cfg': ('ValLoop', 'LongVideoValLoop'),
                 'test_cfg': ('TestLoop', 'LongVideoTestLoop')}


def _loader_steps(cfg: Config):
    for key in ('val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        pipeline = (loader or {}).get('dataset', {}).get('pipeline') or []
        for step in pipeline:
            if isinstance(step, dict) and step.get('type') in CLIP_LOADERS:
                yield key, step


def _use_stream_loops(cfg: Config) -> None:
    """Make the val / test loops stream where their loader reads frames."""
    for loop_key, loader_key in (('val_cfg', 'val_dataloader'), ('test_cfg', 'test_dataloader')):
        loop, loader = cfg.get(loop_key), cfg.get(loader_key)
        pipeline = (loader or {}).get('dataset', {}).get('pipeline') or []
        if loop is None or not any(isinstance(s, dict) and s.get('type') in STREAM_LOADERS
                                   for s in pipeline):
            continue
        plain, streaming = _STREAM_LOOPS[loop_key]
        if loop.get('type', plain) in (plain, f'mmengine.{plain}'):
            loop['type'] = streaming  # a custom loop is left as it is


def apply_long_video(cfg: Config) -> Optional[dict]:
    """Apply ``cfg.long_video`` to the val / test loaders and ``model.test_cfg``, in place.

    Returns:
        The checked ``long_video`` dict given to the model, or None (no switch, or
        ``mode='resample'``).

    Raises:
        ValueError: ``mode='sliding'`` with no ``window`` and no loader ``max_clips`` to take
            it from, or a bad key (naming ``long_video.<key>``).
    """
    raw = dict(cfg.get('long_video') or {})
    if not raw:
        return None
    stream = raw.pop('stream', True)  # the loops' business, not the model's
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
    if not isinstance(stream, bool):
        raise ValueError(f'long_video.stream must be True or False, got {stream!r}')
    if stream:
        _use_stream_loops(cfg)
    return lv


def predict_in_windows(model: torch.nn.Module, post: Callable[[dict], dict],
                       source: Union['ClipStream', np.ndarray],
                       queries: Sequence[dict], lv: dict, clip_len: float, duration: float,
                       prepare: Callable[[dict], dict], nms_thr: float = 0.7,
                       max_windows: int = 10, update: Optional[Callable[[int], None]] = None
                       ) -> List[Tuple[dict, dict]]:
    """Ground the queries of one video of any length, window by window: the one place for
    it (``init_grounder(...).predict`` and the long-video loops of ``tools/test.py``).

    Windows of ``lv['window']`` clips, ``lv['stride']`` apart, are read ``batch_windows``
    at a time; each window is read once for all queries (the stream keeps the frames the
    next window shares), the rest of the test pipeline (``post``) turns it and a query into
    a model input, and the outputs are stitched per query
    (:class:`~mmvpeft.models.tasks.sliding_window.WindowStitcher`), then decoded with the
    cross-window rescoring and NMS (:func:`~mmvpeft.models.tasks.sliding_window.finish_prediction`,
    which reads its candidate segments from the stream again). Memory holds
    ``batch_windows`` windows of frames, whatever the video's length.

    Args:
        model: a ``MomentGrounder`` in eval mode, called with ``mode='tensor'``.
        post: the test pipeline after the loader (resize, crop, format, tokenize, pack),
            called on ``dict(query, **window)``.
        source: a :class:`~mmvpeft.datasets.transforms.video_stream.ClipStream` (frames) or
            ``(T, D)`` clip features.
        queries: per query, the loader's results without the video (``qid``, ``query``,
            ``gt_windows``, ...; ``text_feat`` for features).
        lv: a checked ``long_video`` dict.
        clip_len, duration: seconds per clip, seconds of the video.
        prepare: a collated batch (``video_query_collate``) to the model's ``inputs`` on
            its device.
        nms_thr, max_windows: the model's ``test_cfg``.
        update: progress callback, called with the number of windows swept.

    Returns:
        Per query ``(prediction, meta)``: ``prediction`` with ``pred_relevant_windows``
        (``[[start, end, score], ...]``, best first) and ``pred_saliency_scores`` (one per
        clip of the whole video); ``meta`` the packed ``data_samples`` of the query (its
        meta keys, ``clip_len``) with ``num_clips`` of the whole video.
    """
    features = isinstance(source, np.ndarray)
    num_clips = len(source) if features else source.num_clips
    spans = plan_windows(num_clips, lv['window'], lv['stride'])
    next_start = {s: n for (s, _), (n, _) in zip(spans, spans[1:])}

    def read(runs, keep_from=None) -> dict:
        """A window: clip runs put side by side (one run in the sweep)."""
        if features:
            win = dict(video_feat=np.concatenate([source[s:e] for s, e in runs]))
        else:
            parts = [source.window(s, e, keep_from=keep_from) for s, e in runs]
            win = dict(parts[0])
            if len(parts) > 1:
                for key in ('imgs', 'frame_inds'):
                    win[key] = np.concatenate([p[key] for p in parts])
        win['num_clips'] = sum(e - s for s, e in runs)
        return win

    def run(q: int, wins: List[dict]):
        items = [post(dict(queries[q], **win)) for win in wins]
        out = model(prepare(video_query_collate(items)), None, mode='tensor')
        return out, items[0]['data_samples']

    stitchers = [WindowStitcher(num_clips, lv['window'], lv['stride']) for _ in queries]
    metas: List[Optional[dict]] = [None] * len(queries)
    for lo in range(0, len(spans), lv['batch_windows']):
        chunk = spans[lo:lo + lv['batch_windows']]
        wins = [read(((s, e), ), next_start.get(s)) for s, e in chunk]
        for q in range(len(queries)):  # one forward pass per query, as predict runs one
            out, meta = run(q, wins)
            metas[q] = metas[q] or meta
            for k, (s, e) in enumerate(chunk):
                stitchers[q].add(s, e, out['logits'][k, :e - s], out['dist'][k, :e - s])
        del wins
        if update is not None:
            update(len(chunk))
    results = []
    for q, stitcher in enumerate(stitchers):
        prob, dist = stitcher.result()

        def forward(chunk, q=q):  # candidates side by side (rescoring): read them again
            return run(q, [read(runs) for runs in chunk])[0]

        pred = finish_prediction(forward, prob, dist, clip_len, duration, lv, nms_thr,
                                 max_windows)
        results.append((pred, dict(metas[q], num_clips=num_clips)))
    return results
