"""README's video QA demo block runs exactly as written, line by line from the root of a copy
of the clone: the untrained model (with its answers dumped), then training, which must beat
the untrained model and the majority-answer baseline by a wide margin."""
import json
import os.path as osp
import sys

from mmengine.config import Config
from mmengine.registry import init_default_scope

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from test_readme import BLOCKS, _clone_copy, last_epoch_metrics  # noqa: E402
from test_readme_issue7 import _block, _run_lines  # noqa: E402


def _majority_baseline(root):
    """Accuracy of the most frequent training answer on val, from the demo's own data."""
    from mmvpeft.evaluation.functional.qa_metrics import majority_answer_baseline
    from mmvpeft.registry import DATASETS
    init_default_scope('mmvpeft')
    cfg = Config.fromfile(osp.join(root, 'configs/demo/qa_demo.py'))
    sets = []
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        ds = dict(loader.dataset, data_root=osp.join(root, loader.dataset.data_root),
                  pipeline=[])
        built = DATASETS.build(ds)
        sets.append([built.get_data_info(i) for i in range(len(built))])
    train, val = sets
    return majority_answer_baseline([q['answer'] for q in train], [q['answer'] for q in val],
                                    [q['question_type'] for q in train],
                                    [q['question_type'] for q in val])


def test_qa_demo_block_runs_as_written_and_learns(tmp_path):
    assert 'qa-demo' in BLOCKS
    root = _clone_copy(tmp_path / 'mmvpeft')
    untrained_log, trained_log = _run_lines(_block('qa-demo'), root)
    untrained = last_epoch_metrics(untrained_log, 'test')
    trained = last_epoch_metrics(trained_log, 'val')
    with open(osp.join(root, 'work_dirs/qa_demo/untrained_answers.jsonl')) as f:
        dumped = [json.loads(line) for line in f]
    assert len(dumped) == 72 and set(dumped[0]) >= {'qid', 'vid', 'question', 'pred_answer',
                                                    'answer'}
    dumped_acc = 100 * sum(r['pred_answer'] == r['answer'] for r in dumped) / len(dumped)
    assert abs(dumped_acc - untrained['acc']) < 1e-3
    baseline = _majority_baseline(root)
    assert trained['acc'] >= 40 and trained['acc'] >= 3 * untrained['acc'], (trained, untrained)
    assert trained['acc'] >= baseline['acc'] + 20 and trained['acc'] > baseline['prior_acc']
