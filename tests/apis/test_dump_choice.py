"""``--dump`` picks the task's dumper: captions / summaries as JSON lines, grounding as the
moment_detr submission."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmvpeft.apis import add_submission_dump

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.mark.parametrize('config, dumper', [
    ('configs/demo/caption_demo.py', 'PredictionDumper'),
    ('configs/read_how2_summarization.py', 'PredictionDumper'),
    ('configs/demo/grounding_demo.py', 'MomentSubmissionDumper'),
])
def test_dump_follows_the_task(config, dumper):
    cfg = Config.fromfile(osp.join(REPO_ROOT, config))
    before = cfg.test_evaluator
    before = list(before) if isinstance(before, (list, tuple)) else [before]
    add_submission_dump(cfg, 'preds.jsonl')
    evaluators = cfg.test_evaluator
    assert evaluators[-1]['type'] == dumper and evaluators[-1]['out_file'] == 'preds.jsonl'
    assert evaluators[:-1] == before  # the task's metrics stay
