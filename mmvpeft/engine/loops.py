"""Val / test loops that read long videos window by window (``long_video`` with
``mode='sliding'``).

The config's resolve pass (:func:`mmvpeft.apis.long_video.apply_long_video`) swaps MMEngine's
``ValLoop`` / ``TestLoop`` for these when the val / test pipeline reads frames
(``LoadVideoClips``, ``LoadFrameFolder``). At build, a loop cuts its dataset's pipeline
after the loader and sets the loader to ``stream=True``: the data loader (its sampler,
workers and ranks unchanged) then yields each item's annotation and clip plan with a lazy
``video_stream`` handle instead of the decoded video. Each batch is grouped by video; the
queries of one video run together through
:func:`mmvpeft.apis.long_video.predict_in_windows`, which reads each window once, runs the
rest of the pipeline (resize, crop, format, tokenize, pack) on it, and stitches, exactly as
``init_grounder(...).predict`` does. Memory holds ``batch_windows`` windows of frames
whatever the video's length. The prediction dicts are the model's (prediction keys plus the
sample's meta), so evaluators, ``--dump`` and ``--show-dir`` take them unchanged.

A pipeline without such a loader (clip features, a frozen-prefix cache), a model without a
sliding ``long_video``, or a dataset without a plain ``pipeline`` runs as MMEngine's loop.
"""
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner.amp import autocast
from mmengine.runner.loops import TestLoop, ValLoop

from mmvpeft.registry import LOOPS


def keep_items(batch: List[dict]) -> List[dict]:
    """The streaming loops' collate: the lazy items as they are (nothing to stack)."""
    return list(batch)


def _group_by_video(batch: Sequence[dict]) -> Dict[tuple, List[int]]:
    """Indices of the batch's items per video (same handle: same file, same duration)."""
    groups: Dict[tuple, List[int]] = {}
    for i, item in enumerate(batch):
        handle = item['video_stream']
        groups.setdefault(tuple(sorted(handle.items())), []).append(i)
    return groups


class _StreamingLoop:
    """What the val and test loops share: splitting the pipeline, predicting a batch.
    Mixed in before MMEngine's loop, whose ``run_iter`` runs when nothing streams."""
    _stage: str  # 'val' / 'test': the hooks called around a batch

    def __init__(self, runner, dataloader, evaluator, fp16: bool = False):
        super().__init__(runner, dataloader, evaluator, fp16)
        self._setup_streaming()

    @torch.no_grad()
    def run_iter(self, idx, data_batch) -> None:
        if self._post is None:
            return super().run_iter(idx, data_batch)
        self._stream_iter(idx, data_batch)

    def _setup_streaming(self) -> None:
        from mmvpeft.apis.long_video import STREAM_LOADERS
        self._post = None
        model = self._model()
        lv = getattr(model, 'long_video', None)
        name = type(self).__name__
        if not lv or lv.get('mode') != 'sliding':
            print_log(f'{name}: the model has no sliding long_video; videos are decoded whole',
                      logger='current', level=30)
            return
        dataset = self.dataloader.dataset
        transforms = getattr(getattr(dataset, 'pipeline', None), 'transforms', None)
        idx = next((i for i, t in enumerate(transforms or ())
                    if type(t).__name__ in STREAM_LOADERS and getattr(t, 'streamable', False)),
                   None)
        if idx is None:  # features, a prefix cache, or a wrapped dataset
            print_log(f'{name}: no frame loader ({", ".join(STREAM_LOADERS)}) in the '
                      f'{type(dataset).__name__} pipeline; running as the plain loop',
                      logger='current')
            return
        loader = transforms[idx]
        if loader.max_clips is not None:
            raise ValueError(f'{name}: {type(loader).__name__}(max_clips={loader.max_clips}) '
                             'resamples long videos; long_video (mode="sliding") needs '
                             'max_clips=None in the val / test pipeline (apply_long_video '
                             'sets it)')
        loader.stream = True
        self._post = type(dataset.pipeline)(transforms[idx + 1:])
        dataset.pipeline.transforms = transforms[:idx + 1]
        self.dataloader.collate_fn = keep_items
        self._lv = lv
        print_log(f'{name}: {type(loader).__name__} streams each video in windows of '
                  f'{lv["window"]} clips (stride {lv["stride"]})', logger='current')

    def _model(self) -> torch.nn.Module:
        model = self.runner.model
        return model.module if is_model_wrapper(model) else model

    def _predict_stream(self, batch: Sequence[dict]) -> List[dict]:
        """The model's prediction dicts for a batch of lazy items, in batch order."""
        from mmvpeft.apis.long_video import predict_in_windows
        from mmvpeft.datasets.transforms.video_stream import open_stream
        model = self._model()
        test_cfg = getattr(model, 'test_cfg', {})
        preprocess = model.data_preprocessor
        outputs: List[Optional[dict]] = [None] * len(batch)
        for inds in _group_by_video(batch).values():
            stream = open_stream(batch[inds[0]]['video_stream'])
            try:
                queries = [{k: v for k, v in batch[i].items() if k != 'video_stream'}
                           for i in inds]
                results = predict_in_windows(
                    model, self._post, stream, queries, self._lv, stream.clip_len,
                    stream.duration, lambda b: preprocess(b, False)['inputs'],
                    test_cfg.get('nms_thr', 0.7), test_cfg.get('max_windows', 10))
            finally:
                stream.close()
            for i, (pred, meta) in zip(inds, results):
                pred.update({k: v for k, v in meta.items() if k not in pred})
                outputs[i] = pred
        return outputs

    def _stream_iter(self, idx: int, data_batch) -> None:
        """One batch, as MMEngine's ``run_iter`` of the loop's stage."""
        stage = self._stage
        self.runner.call_hook(f'before_{stage}_iter', batch_idx=idx, data_batch=data_batch)
        with autocast(enabled=self.fp16):
            outputs = self._predict_stream(data_batch)
        self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        self.runner.call_hook(f'after_{stage}_iter', batch_idx=idx, data_batch=data_batch,
                              outputs=outputs)


@LOOPS.register_module()
class LongVideoTestLoop(_StreamingLoop, TestLoop):
    """MMEngine's ``TestLoop`` reading frame pipelines window by window (see the module).

    Args: as ``TestLoop``.
    """
    _stage = 'test'


@LOOPS.register_module()
class LongVideoValLoop(_StreamingLoop, ValLoop):
    """MMEngine's ``ValLoop`` reading frame pipelines window by window (see the module).

    Args: as ``ValLoop``.
    """
    _stage = 'val'


__all__ = ['LongVideoTestLoop', 'LongVideoValLoop', 'keep_items']
