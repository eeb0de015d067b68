"""README's captioning and summarization demo blocks run exactly as written (line by line,
from the root of a copy of the clone), learn far beyond the untrained model, and the
``--dump`` line writes one JSON line per val video."""
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from test_readme import last_epoch_metrics  # noqa: E402
from test_readme_issue7 import _block, _clone_copy, _run_lines  # noqa: E402


def test_caption_demo_block_runs_as_written_and_learns(tmp_path):
    root = _clone_copy(tmp_path / 'mmvpeft')
    untrained_log, train_log = _run_lines(_block('caption-demo'), root)
    untrained = last_epoch_metrics(untrained_log, 'test')
    trained = last_epoch_metrics(train_log, 'val')
    assert trained['CIDEr'] >= 100 and trained['CIDEr'] >= 10 * max(untrained['CIDEr'], 1)
    assert trained['Bleu_4'] >= untrained['Bleu_4'] + 20
    with open(osp.join(root, 'work_dirs/caption_demo/untrained_preds.jsonl')) as f:
        records = [json.loads(line) for line in f]
    assert len(records) == 24  # the val videos
    assert set(records[0]) == {'id', 'video', 'prediction', 'references'}
    assert records[0]['id'] == 'val_0000' and len(records[0]['references']) == 2
    assert records[0]['video'].endswith('val_0000.mp4')


def test_summarization_demo_block_runs_as_written_and_learns(tmp_path):
    root = _clone_copy(tmp_path / 'mmvpeft')
    untrained_log, train_log = _run_lines(_block('summarization-demo'), root)
    untrained = last_epoch_metrics(untrained_log, 'test')
    trained = last_epoch_metrics(train_log, 'val')
    for key in ('ROUGE-1', 'ROUGE-2', 'ROUGE-L-F1'):
        assert trained[key] >= untrained[key] + 30, (key, untrained, trained)
    assert 'loss_pvla' in train_log
