"""Stop training at the first non-finite loss or gradient; never save a non-finite checkpoint."""
from typing import Dict, List, Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmvpeft.registry import HOOKS


class NonFiniteError(FloatingPointError):
    """A loss, gradient or checkpoint tensor is NaN or infinite; the message names the training
    step, the loss term or parameter, and the batch's samples (qid and feature files)."""


def _sample_name(sample: dict) -> str:
    files = list(sample.get('video_feat_files') or [])
    for key in ('text_feat_file', 'video_path'):
        if sample.get(key):
            files.append(sample[key])
    name = f'qid={sample.get("qid")!r}'
    return name + (f' ({", ".join(map(str, files))})' if files else '')


def non_finite_inputs(inputs: dict, data_samples: Optional[List[dict]]) -> List[str]:
    """Samples of a batch whose input tensors hold a NaN or inf, with their files.

    Args:
        inputs: the model inputs, tensors of shape ``(B, ...)`` (``video_feat``, ``imgs``,
            ``text_feat``).
        data_samples: the B meta dicts (``qid``, ``video_feat_files``, ``text_feat_file``).
    """
    bad = []
    for key, value in (inputs or {}).items():
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            continue
        finite = torch.isfinite(value.detach()).flatten(1).all(1) if value.dim() > 1 else \
            torch.isfinite(value.detach())
        for i in torch.nonzero(~finite).flatten().tolist():
            sample = data_samples[i] if data_samples and i < len(data_samples) else {}
            bad.append(f'{key} of {_sample_name(sample)}')
    return bad


@HOOKS.register_module()
class NonFiniteCheckHook(Hook):
    """Raise :class:`NonFiniteError` at the first non-finite loss term or gradient.

    * Loss: a forward hook on the model checks every term that ``forward(mode='loss')``
      returns, before the backward pass, so the bad step is never applied. The error names
      the step, the term and its value, the batch's qids, and which samples (qid, feature
      file) carry non-finite inputs; with finite inputs it says the model diverged and gives
      the learning rate.
    * Gradient: a tensor hook on every trained parameter checks its gradient during the
      backward pass, before the optimizer step (skipped under ``AmpOptimWrapper``, whose
      dynamic loss scale expects and skips inf gradients).
    * Checkpoint: before any checkpoint (and the adapter file) is written, every floating
      tensor of its state dict must be finite.

    Args:
        check_grads: also check gradients (the default).
    """

    priority = 'VERY_HIGH'  # before AdapterExportHook writes its file on save

    def __init__(self, check_grads: bool = True):
        self.check_grads = check_grads
        self._step, self._epoch = 0, 0
        self._batch: Optional[dict] = None
        self._losses: Dict[str, float] = {}
        self._handles = []

    def _where(self) -> str:
        return f'training step {self._step} (epoch {self._epoch})'

    def _samples(self) -> str:
        samples = (self._batch or {}).get('data_samples') or []
        qids = [s.get('qid') for s in samples if isinstance(s, dict)]
        return f'batch qids {qids[:16]}' + (' ...' if len(qids) > 16 else '')

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self._lr = lambda: runner.optim_wrapper.get_lr()
        self._handles.append(model.register_forward_hook(self._check_loss, with_kwargs=True))
        amp = type(runner.optim_wrapper).__name__.startswith('Amp')
        if self.check_grads and not amp:
            for name, p in model.named_parameters():
                if p.requires_grad:
                    self._handles.append(p.register_hook(
                        lambda g, name=name: self._check_grad(g, name)))

    def after_train(self, runner) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._step, self._epoch = runner.iter + 1, runner.epoch + 1
        self._batch = data_batch if isinstance(data_batch, dict) else None

    def _check_loss(self, module, args, kwargs, output) -> None:
        mode = kwargs.get('mode', args[2] if len(args) > 2 else None)
        if mode != 'loss' or not module.training or not isinstance(output, dict):
            return
        self._losses = {}
        bad = []
        for key, value in output.items():
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                v = value.detach()
                self._losses[key] = float(v.float().mean())
                if not torch.isfinite(v).all():
                    bad.append(f'{key} = {self._losses[key]}')
        if not bad:
            return
        inputs = kwargs.get('inputs', args[0] if args else None)
        samples = kwargs.get('data_samples', args[1] if len(args) > 1 else None)
        from_data = non_finite_inputs(inputs if isinstance(inputs, dict) else {}, samples)
        if from_data:
            cause = 'non-finite input data: ' + '; '.join(from_data)
        else:
            cause = (f'the inputs are finite, so the model diverged (learning rate '
                     f'{self._lr()}): lower it, or check the loss weights')
        qids = [s.get('qid') for s in samples or [] if isinstance(s, dict)]
        raise NonFiniteError(f'non-finite loss at {self._where()}: {", ".join(bad)}; {cause}. '
                             f'Batch qids {qids[:16]}. Training stopped; no checkpoint of '
                             'this state is written.')

    def _check_grad(self, grad: torch.Tensor, name: str) -> None:
        if grad is not None and not torch.isfinite(grad).all():
            losses = ', '.join(f'{k}={v:.4g}' for k, v in self._losses.items())
            raise NonFiniteError(
                f'non-finite gradient of {name} at {self._where()}, before the optimizer '
                f'step; the loss terms were finite ({losses}); {self._samples()}; learning '
                f'rate {self._lr()}. Training stopped; no checkpoint of this state is written.')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for key, value in (checkpoint.get('state_dict') or {}).items():
            if (isinstance(value, torch.Tensor) and value.is_floating_point()
                    and not torch.isfinite(value).all()):
                raise NonFiniteError(f'refusing to save a checkpoint at epoch {runner.epoch}: '
                                     f'weight {key} is not finite')
