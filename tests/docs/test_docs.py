"""Every marked command block of README.md and docs/ runs as written (see conftest.py),
and the demos it runs produce what the docs say: trained models beat untrained ones by the
margins stated on the pages."""
import json
import os
import os.path as osp
import re

import pytest


# Groups the docs must keep: each one is the only test of what it shows.
REQUIRED = {'peft-quickstart', 'own-method', 'retrieval-demo', 'eval-moments', 'adapter-io',
            'demo', 'extract-features', 'prefix-cache', 'caption-demo',
            'summarization-demo', 'qa-demo'}


def test_markers_are_well_formed_and_required_groups_exist(docs):
    assert not docs.problems, '\n'.join(docs.problems)
    assert REQUIRED <= set(docs.groups), sorted(REQUIRED - set(docs.groups))


def test_every_command_block_is_marked(docs):
    missing = docs.unmarked
    assert not missing, ('shell blocks without a "<!-- doc-test: NAME -->" or '
                         f'"<!-- doc-test: skip (reason) -->" marker: {missing}')


def test_skipped_block(doc_skip):
    where, reason = doc_skip
    pytest.skip(f'{where}: {reason}')


def last_epoch_metrics(log, mode='test'):
    """``{key: value}`` of the last ``Epoch(mode)`` line MMEngine logged.

    Parsed as whole ``key: value`` pairs: a bare search for ``R1@0.5: `` (or ``t2v/R@1: ``)
    also matches the ``chance/...`` key of the same name that the metrics log after it, the
    chance level rather than the model's figure."""
    lines = [ln for ln in log.splitlines() if f'Epoch({mode})' in ln]
    assert lines, f'no Epoch({mode}) line in the output'
    return {k: float(v) for k, v in re.findall(r'(\S+): (-?[\d.]+(?:e[-+]?\d+)?)', lines[-1])}


# ---- what each group must produce, beyond running without error -------------------------
def check_retrieval_demo(root, outputs):
    """The untrained model, then training, which must lift t2v R@1 far above it."""
    untrained = last_epoch_metrics(outputs[0], 'test')['t2v/R@1']
    trained = last_epoch_metrics(outputs[1], 'val')['t2v/R@1']
    assert trained >= 20.0 and trained >= 3 * untrained, (untrained, trained)


def check_eval_moments(root, outputs):
    with open(osp.join(root, 'work_dirs/grounding_demo/val_metrics.json')) as f:
        metrics = json.load(f)
    brief = metrics['brief']
    for key in ('MR-full-R1@0.5', 'MR-full-mAP', 'MR-short-mAP', 'HL-min-VeryGood-mAP',
                'HL-min-Fair-Hit1'):
        assert key in brief, key
    assert set(metrics['full']['MR-full']['MR-mAP']) >= {'0.5', '0.95', 'average'}
    # the standalone evaluator agrees with what test.py logged (2-decimal rounding)
    logged = last_epoch_metrics(outputs[0])
    for mine, theirs in (('MR-full-R1@0.5', 'R1@0.5'), ('MR-full-R1@0.7', 'R1@0.7'),
                         ('MR-full-mIoU', 'mIoU'), ('MR-full-mAP', 'mAP')):
        assert abs(brief[mine] - logged[theirs]) <= 0.005 + 1e-9, (mine, brief, logged)


def check_demo(root, outputs):
    import cv2
    assert re.search(r'1\.\s+[\d.]+ -\s+[\d.]+ s\s+score', outputs[1])
    img = cv2.imread(osp.join(root, 'timeline.png'))
    assert img is not None and img.shape[1] == 960


def check_look(root, outputs):
    """plot_curves after the retrieval demo: every epoch's t2v R@1 drawn; --show-dir: two
    caption-to-video and two video-to-text pictures."""
    import cv2
    assert re.search(r't2v/R@1 \(val\) work_dirs/retrieval_demo: 4 points', outputs[0])
    assert cv2.imread(osp.join(root, 'work_dirs/retrieval_demo/curves.png')) is not None
    show = osp.join(root, 'work_dirs/retrieval_demo/show')
    names = sorted(os.listdir(show))
    assert [n[:3] for n in names] == ['t2v', 't2v', 'v2t', 'v2t'], names
    assert all(cv2.imread(osp.join(show, n)) is not None for n in names)


def check_extract_features(root, outputs):
    import numpy as np
    assert re.search(r'extracted \d+ video\(s\)', outputs[1])
    feats = np.load(osp.join(root, 'data/my_features/clip_features/synth_0000.npz'))['features']
    assert feats.shape == (8, 64)  # 16 s / 2 s clips, embed_dim 64


def check_prefix_cache(root, outputs):
    assert re.search(r"start blocks \{'video': 1, 'text': 1\}, 8 video\(s\)", outputs[0])
    assert osp.isfile(osp.join(root, 'data/read_demo_cache/video/meta.json'))
    assert 'loss_pvla' in outputs[1] and 'Epoch(val) [1]' in outputs[1]


def check_generation_benchmark(root, outputs):
    """Cached and uncached decoding agree, for greedy and beam search (timings are not
    checked: they belong to the benchmark's printout)."""
    assert re.search(r'greedy: .*speed-up [\d.]+x, tokens identical: True', outputs[0])
    assert re.search(r'beam 3: .*speed-up [\d.]+x, tokens identical: True', outputs[0])


def check_caption_demo(root, outputs):
    """Trained CIDEr >= 100 and 10x the untrained model; the dump has one line per video."""
    untrained = last_epoch_metrics(outputs[0], 'test')
    trained = last_epoch_metrics(outputs[1], 'val')
    assert trained['CIDEr'] >= 100 and trained['CIDEr'] >= 10 * max(untrained['CIDEr'], 1)
    assert trained['Bleu_4'] >= untrained['Bleu_4'] + 20
    with open(osp.join(root, 'work_dirs/caption_demo/untrained_preds.jsonl')) as f:
        records = [json.loads(line) for line in f]
    assert len(records) == 24  # the val videos
    assert set(records[0]) == {'id', 'video', 'prediction', 'references'}
    assert records[0]['id'] == 'val_0000' and len(records[0]['references']) == 2
    assert records[0]['video'].endswith('val_0000.mp4')


def check_summarization_demo(root, outputs):
    """ROUGE-1/2/L F1 at least 30 points above the untrained model, with PVLA logged."""
    untrained = last_epoch_metrics(outputs[0], 'test')
    trained = last_epoch_metrics(outputs[1], 'val')
    for key in ('ROUGE-1', 'ROUGE-2', 'ROUGE-L-F1'):
        assert trained[key] >= untrained[key] + 30, (key, untrained, trained)
    assert 'loss_pvla' in outputs[1]


def _majority_baseline(root):
    """Accuracy of the most frequent training answer on val, from the demo's own data."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

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


def check_qa_demo(root, outputs):
    """Training beats the untrained model 3x and the majority answer by 20 points; the
    dumped answers score what test.py logged."""
    untrained = last_epoch_metrics(outputs[0], 'test')
    trained = last_epoch_metrics(outputs[1], 'val')
    with open(osp.join(root, 'work_dirs/qa_demo/untrained_answers.jsonl')) as f:
        dumped = [json.loads(line) for line in f]
    assert len(dumped) == 72 and set(dumped[0]) >= {'qid', 'vid', 'question', 'pred_answer',
                                                    'answer'}
    dumped_acc = 100 * sum(r['pred_answer'] == r['answer'] for r in dumped) / len(dumped)
    assert abs(dumped_acc - untrained['acc']) < 1e-3
    baseline = _majority_baseline(root)
    assert trained['acc'] >= 40 and trained['acc'] >= 3 * untrained['acc'], (trained, untrained)
    assert trained['acc'] >= baseline['acc'] + 20 and trained['acc'] > baseline['prior_acc']


CHECKS = {name[len('check_'):].replace('_', '-'): fn for name, fn in dict(globals()).items()
          if name.startswith('check_')}


def test_every_check_has_its_group(docs):
    assert set(CHECKS) <= set(docs.groups), sorted(set(CHECKS) - set(docs.groups))


def test_doc_commands_run_as_written(doc_chain, run_chain):
    """A root group, then every group marked ``(after ROOT)``, in one copy of the clone;
    then each group's check (python groups also check their ``# expected`` prints)."""
    results = run_chain(doc_chain)
    for name in doc_chain:
        if name in CHECKS:
            CHECKS[name](*results[name])


def _anchors(text):
    """GitHub's heading anchors of a markdown text."""
    out = set()
    for heading in re.findall(r'^#+ (.+)$', re.sub(r'```.*?```', '', text, flags=re.S), re.M):
        slug = re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')
        out.add(slug)
    return out


def test_relative_links_resolve(docs):
    """Every relative link of README.md and docs/ names an existing file (and heading)."""
    import os
    root = docs.repo_root
    broken = []
    for rel in docs.files:
        with open(osp.join(root, rel), encoding='utf-8') as f:
            text = f.read()
        prose = re.sub(r'```.*?```', '', text, flags=re.S)
        for target in re.findall(r'\]\(([^)\s]+)\)', prose):
            if re.match(r'[a-z]+:', target):
                continue
            path, _, anchor = target.partition('#')
            dest = osp.normpath(osp.join(osp.dirname(rel), path)) if path else rel
            if not os.path.exists(osp.join(root, dest)):
                broken.append(f'{rel}: {target} (no {dest})')
            elif anchor and dest.endswith('.md'):
                with open(osp.join(root, dest), encoding='utf-8') as f:
                    if anchor not in _anchors(f.read()):
                        broken.append(f'{rel}: {target} (no heading #{anchor} in {dest})')
    assert not broken, '\n'.join(broken)
