"""Resuming optimizer state of another optimizer type is refused, naming both."""
from types import SimpleNamespace

import pytest
import torch

from mmvpeft.engine.hooks import OptimizerMismatchError, ResumeCheckHook
from mmvpeft.engine.hooks.resume_check_hook import check_optimizer_state


def _wrapper(cls, **kw):
    params = [torch.nn.Parameter(torch.randn(3))]
    optimizer = cls(params, lr=0.1, **kw)
    params[0].grad = torch.ones(3)
    optimizer.step()  # a state to save
    return SimpleNamespace(optimizer=optimizer)


def test_meta_type_written_and_compared():
    sgd, adamw = _wrapper(torch.optim.SGD, momentum=0.9), _wrapper(torch.optim.AdamW)
    checkpoint = dict(meta={}, optimizer=sgd.optimizer.state_dict())
    ResumeCheckHook().before_save_checkpoint(SimpleNamespace(optim_wrapper=sgd), checkpoint)
    assert checkpoint['meta']['optimizer_type'] == 'SGD'
    check_optimizer_state(checkpoint, sgd, 'x.pth')  # same type: fine
    with pytest.raises(OptimizerMismatchError, match=r'cannot resume x\.pth: .*saved by SGD, '
                                                     r'and this run builds AdamW'):
        check_optimizer_state(checkpoint, adamw, 'x.pth')
    # A load_from (no resume) never checks: only the weights are used.
    runner = SimpleNamespace(optim_wrapper=adamw, _resume=False)
    ResumeCheckHook().after_load_checkpoint(runner, checkpoint)


def test_older_checkpoint_without_meta_is_told_by_its_settings():
    sgd, adamw = _wrapper(torch.optim.SGD, momentum=0.9), _wrapper(torch.optim.AdamW)
    old = dict(meta={}, optimizer=adamw.optimizer.state_dict())
    with pytest.raises(OptimizerMismatchError, match=r'saved by Adam or AdamW, and this run '
                                                     r'builds SGD'):
        check_optimizer_state(old, sgd, 'old.pth')
    check_optimizer_state(old, _wrapper(torch.optim.AdamW, amsgrad=True), 'old.pth')
    # torch versions add flags to param groups: an older file of the same type still resumes.
    legacy = dict(meta={}, optimizer=sgd.optimizer.state_dict())
    for group in legacy['optimizer']['param_groups']:
        group.pop('fused', None), group.pop('differentiable', None)
    check_optimizer_state(legacy, sgd, 'legacy.pth')
