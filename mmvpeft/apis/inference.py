"""Inference on your own video: build a grounding model from a config and a checkpoint,
then ask it where a query happens.

    from mmvpeft.apis import init_grounder
    grounder = init_grounder('configs/demo/read_demo.py',
                             'work_dirs/read_demo/adapter_latest.safetensors')
    result = grounder.predict('my_video.mp4', 'a red circle moves to the right')
    result['windows']    # [[start_s, end_s, score], ...], best first
    result['saliency']   # one score per clip of result['clip_len'] seconds

The video is decoded with the config's test pipeline (its clip length, frame size and
tokenizer), so predictions match what ``tools/test.py`` computes for the same file. The
model is the trained one exactly: random-weight CLIP towers (the demo configs) are rebuilt
from the config's ``init_seed``, whatever the caller's RNG state, and the checkpoint's
frozen-base fingerprint (adapter file or ``.pth``) is checked against them.

Inputs the datasets refuse are refused here too: a blank query, and ground-truth windows
(``predict(..., gt_windows=...)``) that are reversed or lie outside the video.

Long videos: with ``long_video=dict(mode='sliding', window=W)`` (in the config, or passed to
:func:`init_grounder`) a video of any length is cut into clips at the config's
``clip_len`` and predicted in overlapping windows of ``W`` clips, decoded window by window
(memory holds one window of frames, not the video) and stitched
(:mod:`mmvpeft.models.tasks.sliding_window`). Feature configs take a ``(T, D)`` clip-feature
array or ``.npz`` / ``.npy`` file as the video and a ``(L, D)`` word-feature array or file
as the query.
"""
import copy
import math
import os.path as osp
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmvpeft.datasets.collate import video_query_collate
from mmvpeft.datasets.transforms.video_stream import (ClipStream, load_feature_array,
                                                      match_feature_rate)
from mmvpeft.models.tasks.sliding_window import count_windows, progress_bar
from mmvpeft.registry import MODELS, TRANSFORMS
from mmvpeft.utils.adapter_io import load_adapter, read_adapter
from mmvpeft.utils.checkpoint import check_checkpoint_file
from .config_checks import apply_knob_options, read_config
from .long_video import apply_long_video, predict_in_windows

_VIDEO_LOADERS = ('LoadVideoClips', 'LoadVideoFrames')
_FEATURE_LOADERS = ('LoadClipFeatures', 'LoadTextFeatures')


def check_query(query, what: str = 'query') -> str:
    """The query, stripped; a ``TypeError`` / ``ValueError`` naming ``what`` unless it is a
    string holding text (the datasets refuse a blank query too: it would be encoded as
    [SOT, EOT] and predicted on)."""
    if not isinstance(query, str):
        raise TypeError(f'{what} must be a str, got {type(query).__name__}')
    if not query.strip():
        raise ValueError(f'{what} is empty or blank ({query!r}); give the text to ground')
    return query.strip()


def check_gt_windows(windows, duration: float, clip_len: float,
                     what: str = 'gt_windows') -> List[List[float]]:
    """Ground-truth windows as ``[[start, end], ...]`` floats, checked against the video.

    Each window must be two finite numbers with ``0 <= start < end``, starting before the
    video's end and ending at most one clip past it (the decoded length can fall short of a
    window drawn to the annotated end by up to a clip). A window outside the video would
    only be drawn off the timeline, so it is an error naming ``what``.

    Args:
        windows: ``(M, 2)`` seconds, or None.
        duration: the video's length in seconds (as decoded).
        clip_len: seconds per clip of the config.
        what: the argument's name in messages (``--gt`` for the demo tool).

    Returns:
        list: the windows as floats, ends beyond ``duration`` cut to it; empty for None.
    """
    if windows is None:
        return []
    out = []
    for k, w in enumerate(windows):
        if (not isinstance(w, (list, tuple, np.ndarray)) or len(w) != 2 or any(
                isinstance(x, bool) or not isinstance(x, (int, float, np.floating,
                                                          np.integer)) for x in w)):
            raise ValueError(f'{what}: window {k} must be [start, end] in seconds, got {w!r}')
        start, end = float(w[0]), float(w[1])
        if not (math.isfinite(start) and math.isfinite(end)):
            raise ValueError(f'{what}: window {k} [{start:g}, {end:g}] is not finite')
        if not start < end:
            raise ValueError(f'{what}: window {k} [{start:g}, {end:g}] is reversed or empty '
                             '(start must be < end)')
        if start < 0 or start >= duration or end > duration + clip_len:
            raise ValueError(f'{what}: window {k} [{start:g}, {end:g}] s lies outside the '
                             f'video, which is {duration:g} s long (decoded); give windows '
                             f'within [0, {duration:g}]')
        out.append([start, min(end, duration)])
    return out


def _pipeline_cfg(cfg: Config) -> list:
    for key in ('test_dataloader', 'val_dataloader'):
        loader = cfg.get(key)
        if loader and loader.get('dataset', {}).get('pipeline'):
            return copy.deepcopy(list(loader['dataset']['pipeline']))
    raise KeyError('the config has no test_dataloader.dataset.pipeline to decode videos with')


class MomentPredictor:
    """A built grounding model and the pipeline that turns (video, query) into its input.

    Args:
        model: a ``MomentGrounder`` (eval mode).
        cfg: its config (the test pipeline is read from it).
        device: ``'cpu'``, ``'cuda'`` or ``'cuda:N'``.
    """

    def __init__(self, model: torch.nn.Module, cfg: Config, device: str = 'cpu'):
        self.model = model.to(device).eval()
        self.cfg = cfg
        self.device = torch.device(device)
        steps = _pipeline_cfg(cfg)
        types = [s.get('type') for s in steps]
        # Feature configs: (T, D) clip features and (L, D) word features given directly.
        self.feature_input = 'LoadClipFeatures' in types and not any(
            t in _VIDEO_LOADERS for t in types)
        if not self.feature_input and not any(t in _VIDEO_LOADERS for t in types):
            raise ValueError(f'the config\'s test pipeline has no video loader ({types}); '
                             'predicting needs LoadVideoClips (a video file) or '
                             'LoadClipFeatures (clip features)')
        init_default_scope(cfg.get('default_scope', 'mmvpeft'))
        self.long_video = getattr(model, 'long_video', None)
        self._loader_cfg = next((dict(s) for s in steps
                                 if s.get('type') in ('LoadVideoClips', 'LoadClipFeatures')), None)
        self._text_cfg = next((dict(s) for s in steps if s.get('type') == 'LoadTextFeatures'),
                              None)
        if self.feature_input:
            self.pipeline = None
        else:
            self.pipeline = Compose([TRANSFORMS.build(s) for s in steps])
        # What runs on each window after the loader (resize, crop, format, tokenize, pack).
        self._post = Compose([TRANSFORMS.build(s) for s in steps
                              if s.get('type') not in _VIDEO_LOADERS + _FEATURE_LOADERS])
        # PackMomentInputs' default meta keys plus the decoded video's length
        for pipe in (self.pipeline, self._post):
            pack = pipe.transforms[-1] if pipe is not None else None
            if pack is not None and 'video_duration' not in getattr(
                    pack, 'meta_keys', ('video_duration', )):
                pack.meta_keys = tuple(pack.meta_keys) + ('video_duration', )

    def _sample(self, video: str, query: str, index: int) -> dict:
        if self.feature_input:
            raise ValueError('the config\'s test pipeline reads pre-extracted features; pass '
                             'a (T, D) clip-feature array or .npz file and a (L, D) word-feature '
                             'array, or extract features first with tools/extract_features.py')
        query = check_query(query)
        if not osp.isfile(video):
            raise FileNotFoundError(f'video not found: {video}')
        item = self.pipeline(dict(qid=index, query=query, video_path=video,
                                  vid=osp.splitext(osp.basename(video))[0],
                                  gt_windows=np.zeros((0, 2), np.float32)))
        meta = item['data_samples']
        meta.setdefault('duration', float(meta.get('video_duration', meta['num_clips'] *
                                                   meta['clip_len'])))
        return item

    @torch.no_grad()
    def predict_batch(self, items: Sequence[Tuple[str, str]], batch_size: int = 8
                      ) -> List[dict]:
        """Predict for several ``(video_path, query)`` pairs, in batches.

        Raises:
            ValueError: a blank query (naming its index), before any video is decoded.

        Returns:
            One dict per pair, in order: ``video``, ``query``, ``duration`` (s), ``clip_len``
            (s per saliency entry), ``windows`` (``[[start, end, score], ...]`` in seconds,
            best first, at most ``test_cfg.max_windows``) and ``saliency`` (``(num_clips,)``
            list of per-clip highlight scores in [0, 1]).
        """
        for i, (_, query) in enumerate(items if not self.feature_input else ()):
            # all queries first: fail before decoding
            check_query(query, 'query' if len(items) == 1 else f'query of pair {i}')
        if self.feature_input or (self.long_video or {}).get('mode') == 'sliding':
            return [self.predict_long(v, q) for v, q in items]
        out = []
        for lo in range(0, len(items), batch_size):
            chunk = [self._sample(v, q, lo + i) for i, (v, q) in
                     enumerate(items[lo:lo + batch_size])]
            batch = video_query_collate(chunk)
            inputs = {k: v.to(self.device) for k, v in batch['inputs'].items()}
            preds = self.model(inputs, batch['data_samples'], mode='predict')
            for (video, query), pred in zip(items[lo:lo + batch_size], preds):
                out.append(dict(video=video, query=query, duration=float(pred['duration']),
                                clip_len=float(pred['clip_len']),
                                windows=[[float(x) for x in w]
                                         for w in pred['pred_relevant_windows']],
                                saliency=[float(x) for x in pred['pred_saliency_scores']]))
        return out

    def predict(self, video_path, query, gt_windows=None, **kwargs) -> dict:
        """Where ``query`` happens in ``video_path``; see :meth:`predict_batch`.

        Args:
            video_path: the video file (or clip features, for a feature config).
            query: the text to ground (not blank); word features for a feature config.
            gt_windows: optional ``(M, 2)`` ground-truth windows in seconds, checked
                against the decoded video (:func:`check_gt_windows`) and returned as
                ``result['gt_windows']``.
            **kwargs: options of :meth:`predict_long` (``duration``, ``feat_clip_len``,
                ``progress``, ``long_video``), which route the call there.
        """
        if kwargs:
            result = self.predict_long(video_path, query, **kwargs)
        else:
            result = self.predict_batch([(video_path, query)])[0]
        result['gt_windows'] = check_gt_windows(gt_windows, result['duration'],
                                                result['clip_len'])
        return result

    def _text_feat(self, query) -> np.ndarray:
        """``(L, D)`` word features, normalised as the config's ``LoadTextFeatures`` does."""
        text_cfg = self._text_cfg or {}
        if isinstance(query, str):
            if not query.endswith(('.npz', '.npy')) or not osp.isfile(query):
                raise ValueError(f'a feature config takes the query as (L, D) word features: '
                                 f'an array, or a .npz / .npy file; got {query!r}')
            query = load_feature_array(query, text_cfg.get('key', 'last_hidden_state'))
        f = np.asarray(query, np.float32)
        if f.ndim == 3 and f.shape[0] == 1:
            f = f[0]
        if f.ndim != 2 or len(f) == 0:
            raise ValueError(f'query features must be a non-empty (L, D) array, got {f.shape}')
        f = f[:text_cfg.get('max_len', 32)]
        if text_cfg.get('l2_normalize', True):
            f = f / np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-6)
        return f

    @torch.no_grad()
    def predict_long(self, video, query, duration: Optional[float] = None,
                     feat_clip_len: Optional[float] = None, progress: Optional[bool] = None,
                     long_video: Optional[dict] = None) -> dict:
        """Predict on a video of any length, streamed window by window.

        Clips are cut at the config's ``clip_len`` and run in windows of
        ``long_video['window']`` clips (one window over the whole video when no
        ``long_video`` is set), stitched and decoded once (cross-window NMS).

        Args:
            video: a video file; for feature configs a ``(T, D)`` array or ``.npz`` /
                ``.npy`` file of clip features.
            query: the sentence; for feature configs ``(L, D)`` word features (array or file).
            duration: seconds the video lasts (features: checks their rate against the
                config's ``clip_len``; default ``T * clip_len``).
            feat_clip_len: seconds per feature row when known (features at another rate are
                resampled with a warning, or refused with ``feature_rate='error'``).
            progress: show a progress bar over windows (default ``long_video['progress']``).
            long_video: overrides of the model's ``long_video`` settings for this call.

        Returns:
            As :meth:`predict_batch`, plus ``num_windows``.
        """
        from mmvpeft.models.tasks.sliding_window import check_long_video_cfg
        lv = dict(self.long_video or dict(mode='sliding', window=None))
        lv.update(long_video or {})
        clip_len = float(self._loader_cfg.get('clip_len', 2.0))
        if self.feature_input:
            if isinstance(video, str) and not video.endswith(('.npz', '.npy')):
                raise ValueError(f'{video}: the config\'s test pipeline reads pre-extracted '
                                 'features; pass a (T, D) clip-feature array or .npz / .npy '
                                 'file, or extract features first with '
                                 'tools/extract_features.py')
            feat = load_feature_array(video, self._loader_cfg.get('key', 'features'))
            if self._loader_cfg.get('l2_normalize', True):
                feat = feat / np.maximum(np.linalg.norm(feat, axis=-1, keepdims=True), 1e-6)
            feat, _ = match_feature_rate(
                feat, duration, clip_len, lv.get('feature_rate') or 'resample',
                source=video if isinstance(video, str) else 'clip features',
                feat_clip_len=feat_clip_len)
            num_clips = len(feat)
            duration = float(duration if duration else num_clips * clip_len)
            base = dict(text_feat=self._text_feat(query), clip_len=clip_len,
                        clip_len_eff=clip_len, video_duration=duration)
            stream, name = None, video if isinstance(video, str) else '<array>'
        else:
            query = check_query(query)
            stream = ClipStream(video, clip_len, int(self._loader_cfg.get('frames_per_clip', 1)),
                                int(self._loader_cfg.get('num_threads', 1)), duration)
            num_clips, duration = stream.num_clips, stream.duration
            base = dict(qid=0, query=query, video_path=video,
                        vid=osp.splitext(osp.basename(video))[0])
            name = video
        if lv.get('window') is None:
            lv['window'] = num_clips
        lv = check_long_video_cfg(lv, 'long_video')
        num_windows = count_windows(num_clips, lv)
        show = lv['progress'] if progress is None else progress
        test_cfg = getattr(self.model, 'test_cfg', {})
        try:
            [(pred, _)] = predict_in_windows(
                self.model, self._post, feat if stream is None else stream, [base], lv,
                clip_len, duration, lambda batch: {k: v.to(self.device)
                                                   for k, v in batch['inputs'].items()},
                test_cfg.get('nms_thr', 0.7), test_cfg.get('max_windows', 10),
                progress_bar(num_windows, show))
        finally:
            if stream is not None:
                stream.close()
        return dict(video=name, query=query if isinstance(query, str) else '<features>',
                    duration=duration, clip_len=clip_len,
                    windows=[[float(x) for x in w] for w in pred['pred_relevant_windows']],
                    saliency=[float(x) for x in pred['pred_saliency_scores']],
                    num_windows=num_windows)


def build_model_for_inference(config: Optional[Union[str, Config]] = None,
                              checkpoint: Optional[str] = None,
                              device: Optional[str] = None,
                              cfg_options: Optional[dict] = None,
                              allow_base_mismatch: bool = False,
                              long_video: Optional[dict] = None
                              ) -> Tuple[torch.nn.Module, Config, str]:
    """Build a model from a config and load a checkpoint into it, for any task.

    Args: as :func:`init_grounder`.

    Returns:
        ``(model, cfg, device)``; the model is on the CPU, not yet in eval mode.
    """
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if checkpoint in (None, 'none'):
        checkpoint = None
    elif not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
    if config is None:
        if not (checkpoint and checkpoint.endswith('.safetensors')):
            raise ValueError('give a config, or an adapter .safetensors checkpoint that '
                             'stores one')
        cfg = Config.fromstring(read_adapter(checkpoint)[1]['config'], file_format='.py')
    else:
        # Knobs of a child config (clip_pretrained, max_clips, ...) reach their fields.
        cfg = config if isinstance(config, Config) else read_config(config)
    if cfg_options:
        before = copy.deepcopy(cfg)
        cfg.merge_from_dict(cfg_options)
        apply_knob_options(cfg, before, cfg_options)
    if long_video is not None:
        cfg.long_video = {**dict(cfg.get('long_video') or {}), **long_video}
    apply_long_video(cfg)
    if allow_base_mismatch:
        cfg.model.allow_base_mismatch = True
    init_default_scope(cfg.get('default_scope', 'mmvpeft'))
    model = MODELS.build(cfg.model)
    if checkpoint and checkpoint.endswith('.safetensors'):
        load_adapter(model, checkpoint)
    elif checkpoint:
        from mmengine.runner import load_checkpoint
        check_checkpoint_file(checkpoint)
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    return model, cfg, device


def init_grounder(config: Optional[Union[str, Config]] = None,
                  checkpoint: Optional[str] = None,
                  device: Optional[str] = None,
                  cfg_options: Optional[dict] = None,
                  long_video: Optional[dict] = None,
                  allow_base_mismatch: bool = False) -> MomentPredictor:
    """Build a :class:`MomentPredictor` from a config and a checkpoint.

    The model is the one training validated: its frozen towers are rebuilt from the config
    (CLIP weights by tag or file, or random weights from the towers' ``init_seed``, never
    from the global RNG), and the checkpoint's frozen-base fingerprint must match them.

    Args:
        config: config file or ``Config``; may be None when ``checkpoint`` is an adapter
            ``.safetensors`` file, which stores its config.
        checkpoint: an adapter file (``adapter_latest.safetensors``, written by training), an
            MMEngine ``.pth`` checkpoint (``epoch_N.pth``), or None / ``'none'`` for the model
            as built.
        device: default ``'cuda'`` when available, else ``'cpu'``.
        cfg_options: config overrides (dotted keys), e.g. a local CLIP weight file.
        long_video: the config's ``long_video`` switch, set or overridden here, e.g.
            ``dict(mode='sliding', window=16, stride=8, progress=True)`` (see
            :mod:`mmvpeft.apis.long_video`).
        allow_base_mismatch: load a checkpoint trained on another frozen base with a
            warning instead of :class:`~mmvpeft.utils.fingerprint.FrozenBaseMismatchError`
            (as ``--allow-base-mismatch`` of the tools).
    """
    return MomentPredictor(*build_model_for_inference(config, checkpoint, device, cfg_options,
                                                      allow_base_mismatch, long_video))
