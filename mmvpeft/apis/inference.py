"""Inference on your own video: build a grounding model from a config and a checkpoint,
then ask it where a query happens.

    from mmvpeft.apis import init_grounder
    grounder = init_grounder('configs/demo/read_demo.py',
                             'work_dirs/read_demo/adapter_latest.safetensors')
    result = grounder.predict('my_video.mp4', 'a red circle moves to the right')
    result['windows']    # [[start_s, end_s, score], ...], best first
    result['saliency']   # one score per clip of result['clip_len'] seconds

The video is decoded with the config's test pipeline (its clip length, frame size and
tokenizer), so predictions match what ``tools/test.py`` computes for the same file.
"""
import copy
import os.path as osp
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmvpeft.datasets.collate import video_query_collate
from mmvpeft.registry import MODELS, TRANSFORMS
from mmvpeft.utils.adapter_io import load_adapter, read_adapter
from .config_checks import apply_knob_options, read_config

_VIDEO_LOADERS = ('LoadVideoClips', 'LoadVideoFrames')


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
        if not any(s.get('type') in _VIDEO_LOADERS for s in steps):
            raise ValueError(f'the config\'s test pipeline reads pre-extracted features '
                             f'({[s.get("type") for s in steps]}); predicting on a video file '
                             'needs a config that decodes videos (LoadVideoClips), e.g. '
                             'configs/demo/read_demo.py, or extract features first with '
                             'tools/extract_features.py')
        init_default_scope(cfg.get('default_scope', 'mmvpeft'))
        self.pipeline = Compose([TRANSFORMS.build(s) for s in steps])
        # PackMomentInputs' default meta keys plus the decoded video's length
        pack = self.pipeline.transforms[-1]
        if 'video_duration' not in getattr(pack, 'meta_keys', ('video_duration', )):
            pack.meta_keys = tuple(pack.meta_keys) + ('video_duration', )

    def _sample(self, video: str, query: str, index: int) -> dict:
        if not osp.isfile(video):
            raise FileNotFoundError(f'video not found: {video}')
        if not isinstance(query, str):
            raise TypeError(f'query must be a str, got {type(query).__name__}')
        item = self.pipeline(dict(qid=index, query=query.strip(), video_path=video,
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

        Returns:
            One dict per pair, in order: ``video``, ``query``, ``duration`` (s), ``clip_len``
            (s per saliency entry), ``windows`` (``[[start, end, score], ...]`` in seconds,
            best first, at most ``test_cfg.max_windows``) and ``saliency`` (``(num_clips,)``
            list of per-clip highlight scores in [0, 1]).
        """
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

    def predict(self, video_path: str, query: str) -> dict:
        """Where ``query`` happens in ``video_path``; see :meth:`predict_batch`."""
        return self.predict_batch([(video_path, query)])[0]


def build_model_for_inference(config: Optional[Union[str, Config]] = None,
                              checkpoint: Optional[str] = None,
                              device: Optional[str] = None,
                              cfg_options: Optional[dict] = None
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
    init_default_scope(cfg.get('default_scope', 'mmvpeft'))
    model = MODELS.build(cfg.model)
    if checkpoint and checkpoint.endswith('.safetensors'):
        load_adapter(model, checkpoint)
    elif checkpoint:
        from mmengine.runner import load_checkpoint
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    return model, cfg, device


def init_grounder(config: Optional[Union[str, Config]] = None,
                  checkpoint: Optional[str] = None,
                  device: Optional[str] = None,
                  cfg_options: Optional[dict] = None) -> MomentPredictor:
    """Build a :class:`MomentPredictor` from a config and a checkpoint.

    Args:
        config: config file or ``Config``; may be None when ``checkpoint`` is an adapter
            ``.safetensors`` file, which stores its config.
        checkpoint: an adapter file (``adapter_latest.safetensors``, written by training), an
            MMEngine ``.pth`` checkpoint, or None / ``'none'`` for the model as built.
        device: default ``'cuda'`` when available, else ``'cpu'``.
        cfg_options: config overrides (dotted keys), e.g. a local CLIP weight file.
    """
    return MomentPredictor(*build_model_for_inference(config, checkpoint, device, cfg_options))
