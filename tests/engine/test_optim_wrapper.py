"""BF16AutocastOptimWrapper (``tools/train.py --amp`` without CUDA): a few training steps of
the grounding demo's model on a CPU run their matmuls in bfloat16, stay finite, and update
float32 weights."""
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmvpeft.apis.benchmarking import synthetic_batch
from mmvpeft.registry import MODELS, OPTIM_WRAPPERS

DEMO = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
                'demo', 'grounding_demo.py')


def test_training_steps_run_in_bfloat16_on_cpu():
    init_default_scope('mmvpeft')
    cfg = Config.fromfile(DEMO)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    inputs, samples = synthetic_batch(cfg, 4, 8, 6, torch.device('cpu'))
    wrapper = OPTIM_WRAPPERS.build(dict(type='BF16AutocastOptimWrapper',
                                        optimizer=torch.optim.AdamW(model.parameters(),
                                                                    lr=1e-3),
                                        clip_grad=dict(max_norm=1.0)))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    seen = set()

    def record(module, args, output):
        seen.add(output.dtype)
    handles = [m.register_forward_hook(record) for m in model.modules()
               if isinstance(m, torch.nn.Linear)]
    losses = []
    for _ in range(3):  # what BaseModel.train_step does with an optim wrapper
        with wrapper.optim_context(model):
            parsed, _ = model.parse_losses(model(inputs, samples, mode='loss'))
        wrapper.update_params(parsed)
        losses.append(parsed.item())
    assert wrapper.device_type == 'cpu' and seen == {torch.bfloat16}
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
    for n, p in model.named_parameters():
        assert p.dtype == torch.float32, n
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters())
    # Outside the wrapper's context (validation) nothing is autocast.
    seen.clear()
    with torch.no_grad():
        model.eval()(inputs, samples, mode='loss')
    assert seen == {torch.float32}
    for h in handles:
        h.remove()
