"""Bad input, divergence and misconfiguration through the real entry points (issue 9).

Every case goes through ``tools/train.py`` / ``tools/test.py`` (``main(argv)`` in-process, or
a subprocess where the exit code, stderr or a clean interpreter matter) or through a dataset
built from a config, and asserts the error type, that the message names the file / line /
qid / step / key, and that no user file was changed or deleted. Nothing here runs from the
repo root: every test runs in its own temporary folder outside the repo.
"""
import hashlib
import json
import math
import os
import os.path as osp
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(REPO_ROOT, 'configs', 'demo', 'grounding_demo.py')
READ_DEMO = osp.join(REPO_ROOT, 'configs', 'demo', 'read_demo.py')
QVH_FEATURES = osp.join(REPO_ROOT, 'configs', 'grounding_qvhighlights_features.py')
READ_TACOS = osp.join(REPO_ROOT, 'configs', 'read_tacos.py')
READ_YOUTUBE = osp.join(REPO_ROOT, 'configs', 'read_youtube.py')

SMALL = ('generator.num_train_videos=4', 'generator.num_val_videos=2')


@pytest.fixture(autouse=True)
def _outside_repo(tmp_path, monkeypatch):
    """Every test runs from a temporary folder, so nothing depends on (or writes into) the
    repo root."""
    monkeypatch.chdir(tmp_path)


def _opts(data_root, epochs=2, extra=()):
    """Tiny grounding-demo options (no validation during training): data_root is the one
    data knob, no per-loader paths."""
    opts = [f'data_root={data_root}', 'train_dataloader.batch_size=4',
            f'train_cfg.max_epochs={epochs}', 'train_cfg.val_interval=100',
            'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.save_best=None',
            'default_hooks.logger.interval=1', 'val_evaluator.0.chance_draws=1',
            'val_evaluator.1.chance_draws=1']
    for split in ('train', 'val', 'test'):
        opts += [f'{split}_dataloader.dataset.{o}' for o in SMALL]
    return ['--cfg-options', *opts, *extra]


def _snapshot(folder):
    """{relative path: sha256} of every file under ``folder``."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = osp.join(root, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return out


def _written(work_dir):
    return sorted(n for n in os.listdir(work_dir)
                  if n.endswith(('.pth', '.safetensors')) or n == 'last_checkpoint') \
        if osp.isdir(work_dir) else []


@pytest.fixture(scope='module')
def trained(tmp_path_factory, load_tool):
    """One tiny 2-epoch grounding-demo run shared by the checkpoint cases, trained under
    umask 027 (checkpoints must follow it)."""
    root = tmp_path_factory.mktemp('trained')
    data, work = str(root / 'data'), str(root / 'work')
    old_cwd, old_mask = os.getcwd(), os.umask(0o027)
    try:
        os.chdir(root)
        load_tool('train').main([DEMO, '--work-dir', work, *_opts(data)])
    finally:
        os.umask(old_mask)
        os.chdir(old_cwd)
    return dict(data=data, work=work, ckpt=osp.join(work, 'epoch_2.pth'))


# ---------------------------------------------------------------- data loss

@pytest.mark.parametrize('config', [DEMO, READ_DEMO])
def test_generator_refuses_a_user_folder_and_changes_nothing(config, tmp_path, load_tool):
    user = tmp_path / 'my_dataset'
    (user / 'clip_features').mkdir(parents=True)
    (user / 'notes.txt').write_text('my own annotations')
    (user / 'clip_features' / 'v1.npz').write_bytes(b'precious')
    before = _snapshot(user)
    with pytest.raises(FileExistsError, match=re.escape(str(user))):
        load_tool('train').main([config, '--work-dir', str(tmp_path / 'w'),
                                 '--cfg-options', f'data_root={user}'])
    assert _snapshot(user) == before


def test_regeneration_deletes_only_files_of_its_own_manifest(tmp_path):
    from mmvpeft.datasets import generate_synthetic_moments
    root = tmp_path / 'demo'
    generate_synthetic_moments(str(root), num_train_videos=4, num_val_videos=2)
    (root / 'clip_features' / 'mine.npz').write_bytes(b'user file')
    (root / 'README_mine.txt').write_text('kept')
    generate_synthetic_moments(str(root), num_train_videos=3, num_val_videos=2, seed=1)
    assert (root / 'clip_features' / 'mine.npz').read_bytes() == b'user file'
    assert (root / 'README_mine.txt').read_text() == 'kept'
    vids = {json.loads(line)['vid'] for line in open(root / 'annotations_train.jsonl')}
    assert vids == {f'train_{i:04d}' for i in range(3)}
    assert not (root / 'clip_features' / 'train_0003.npz').exists()  # its own stale file


# ---------------------------------------------------------------- non-finite training

def test_lr_1e10_stops_at_the_first_non_finite_loss_and_saves_nothing(tmp_path, load_tool):
    from mmvpeft.engine.hooks import NonFiniteError
    work = str(tmp_path / 'w')
    with pytest.raises(NonFiniteError) as e:
        load_tool('train').main([DEMO, '--work-dir', work, *_opts(
            str(tmp_path / 'data'), extra=('optim_wrapper.optimizer.lr=1e10',
                                           'optim_wrapper.clip_grad=None'))])
    msg = str(e.value)
    # Step 1 is finite and its update blows the weights up: step 2's loss is the first NaN.
    assert re.search(r'non-finite loss at training step 2 \(epoch 1\): loss_\w+ = (nan|inf)',
                     msg), msg
    assert 'the model diverged (learning rate' in msg and "Batch qids ['" in msg, msg
    assert _written(work) == []  # no checkpoint, no adapter file


def _qvh_copy(tmp_path, records, video_dim=8, text_dim=6, clips=None, nan_vid=None):
    """A user's copy of QVHighlights-feature-layout data in tmp_path/qvh."""
    root = tmp_path / 'qvh'
    for sub in ('annotations', 'clip_features', 'clip_text_features'):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for r in records:
        duration = r.get('duration')
        n = (clips or {}).get(r['vid'], int(math.ceil(duration / 2)) if isinstance(
            duration, float) and math.isfinite(duration) else 5)
        feat = rng.normal(size=(n, video_dim)).astype(np.float32)
        if r['vid'] == nan_vid:
            feat[1, 2] = np.nan
        np.savez(root / 'clip_features' / f'{r["vid"]}.npz', features=feat)
        np.savez(root / 'clip_text_features' / f'qid{r["qid"]}.npz',
                 last_hidden_state=rng.normal(size=(3, text_dim)).astype(np.float32))
    for split in ('train', 'val', 'test'):
        with open(root / 'annotations' / f'highlight_{split}_release.jsonl', 'w') as f:
            for r in records:
                f.write(json.dumps(r) + '\n')
    return root


def _records(n=4, duration=10.0):
    return [dict(qid=i, query=f'query {i}', vid=f'v{i}', duration=duration,
                 relevant_windows=[[2.0, 6.0]]) for i in range(n)]


def test_nan_in_one_feature_file_is_named_before_any_step(tmp_path, load_tool):
    root = _qvh_copy(tmp_path, _records(), nan_vid='v2')
    before = _snapshot(root)
    work = str(tmp_path / 'w')
    with pytest.raises(ValueError, match=re.escape(osp.join(str(root), 'clip_features',
                                                            'v2.npz')) + r'.*NaN/inf'):
        load_tool('train').main([QVH_FEATURES, '--work-dir', work, '--cfg-options',
                                 f'data_root={root}', 'model.encoder.video_dim=8',
                                 'model.encoder.text_dim=6', 'train_dataloader.batch_size=2',
                                 'train_dataloader.num_workers=0',
                                 'val_dataloader.num_workers=0'])
    assert _written(work) == [] and _snapshot(root) == before


def _hook_on_demo_model():
    """The demo's model with a NonFiniteCheckHook attached as a Runner would attach it."""
    from types import SimpleNamespace

    from mmengine.registry import init_default_scope

    from mmvpeft.apis import load_config
    from mmvpeft.engine.hooks import NonFiniteCheckHook
    from mmvpeft.registry import MODELS
    init_default_scope('mmvpeft')
    model = MODELS.build(load_config(DEMO).model).train()
    hook = NonFiniteCheckHook()
    runner = SimpleNamespace(model=model, iter=6, epoch=1,
                             optim_wrapper=SimpleNamespace(get_lr=lambda: {'lr': [1e-3]}))
    hook.before_train(runner)
    return model, hook, runner


def _batch(nan_sample=None):
    g = torch.Generator().manual_seed(0)
    inputs = dict(video_feat=torch.randn(2, 5, 64, generator=g),
                  video_mask=torch.ones(2, 5, dtype=torch.bool),
                  text_feat=torch.randn(2, 3, 48, generator=g),
                  text_mask=torch.ones(2, 3, dtype=torch.bool))
    if nan_sample is not None:
        inputs['video_feat'][nan_sample, 1, 0] = float('nan')
    samples = [dict(qid=f'q{i}', vid=f'v{i}', duration=10.0, clip_len=2.0, num_clips=5,
                    gt_windows=np.array([[2.0, 6.0]], np.float32),
                    video_feat_files=[f'/data/clip_features/v{i}.npz']) for i in range(2)]
    return inputs, samples


def test_non_finite_loss_from_data_names_the_step_term_sample_and_file():
    from mmvpeft.engine.hooks import NonFiniteError
    model, hook, runner = _hook_on_demo_model()
    inputs, samples = _batch(nan_sample=1)
    hook.before_train_iter(runner, 0, dict(inputs=inputs, data_samples=samples))
    with pytest.raises(NonFiniteError) as e:
        model(inputs, samples, mode='loss')
    msg = str(e.value)
    assert 'training step 7 (epoch 2)' in msg and re.search(r'loss_\w+ = nan', msg), msg
    assert "video_feat of qid='q1' (/data/clip_features/v1.npz)" in msg and "'q0' (" not in msg


def test_non_finite_gradient_stops_before_the_optimizer_step():
    from mmvpeft.engine.hooks import NonFiniteError
    model, hook, runner = _hook_on_demo_model()
    inputs, samples = _batch()
    hook.before_train_iter(runner, 0, dict(inputs=inputs, data_samples=samples))
    losses = model(inputs, samples, mode='loss')  # finite
    weight = model.head.cls_head[-1].weight if hasattr(model.head, 'cls_head') else next(
        p for p in model.parameters() if p.requires_grad)
    before = weight.detach().clone()
    # sqrt at 0 is finite, its derivative is not: a finite loss with an inf gradient.
    loss = sum(losses.values()) + torch.sqrt((weight - weight.detach()).abs().sum())
    with pytest.raises(NonFiniteError, match=r'non-finite gradient of \S+ at training step 7'):
        loss.backward()
    assert torch.equal(weight.detach(), before)


def test_non_finite_weights_are_never_saved():
    from mmvpeft.engine.hooks import NonFiniteError
    model, hook, runner = _hook_on_demo_model()
    state = model.state_dict()
    key = next(iter(state))
    state[key] = state[key].clone().fill_(float('inf'))
    with pytest.raises(NonFiniteError, match=re.escape(key)):
        hook.before_save_checkpoint(runner, dict(state_dict=state))


# ---------------------------------------------------------------- annotations

def _build_train_set(root, extra=()):
    from mmengine.registry import init_default_scope

    from mmvpeft.apis import load_config
    from mmvpeft.registry import DATASETS
    cfg = load_config(QVH_FEATURES, cfg_options=dict([f'data_root={root}'.split('=', 1)]
                                                     + [o.split('=', 1) for o in extra]))
    init_default_scope('mmvpeft')
    return DATASETS.build(cfg.train_dataloader.dataset)


@pytest.mark.parametrize('field,value,problem', [
    ('relevant_windows', [[float('nan'), 4.0]], r'window 0 \[nan, 4.0\] is not finite'),
    ('relevant_windows', [[1.0, float('inf')]], r'window 0 \[1.0, inf\] is not finite'),
    ('relevant_windows', [[6.0, 2.0]], r'window 0 \[6.0, 2.0\] is reversed'),
    ('duration', float('nan'), r'"duration" must be a finite number > 0, got nan'),
    ('duration', None, r'missing field "duration"'),
    ('query', '   ', r'empty or blank "query"'),
    ('query', '', r'empty or blank "query"'),
])
def test_bad_annotation_names_file_line_qid_and_problem(field, value, problem, tmp_path):
    from mmvpeft.datasets import AnnotationError
    records = _records()
    _qvh_copy(tmp_path, records)
    if value is None:
        del records[2][field]
    else:
        records[2][field] = value
    root = _qvh_copy(tmp_path, records)
    before = _snapshot(root)
    ann = osp.join(str(root), 'annotations', 'highlight_train_release.jsonl')
    with pytest.raises(AnnotationError, match=re.escape(f'{ann}:3: ') + problem
                       + r'.*\(qid=2\)'):
        _build_train_set(root)
    assert _snapshot(root) == before


def test_duplicate_qid_is_reported_at_load_not_as_a_duplicate_prediction(tmp_path):
    from mmvpeft.datasets import AnnotationError
    records = _records()
    records[3]['qid'] = 1
    root = _qvh_copy(tmp_path, records)
    with pytest.raises(AnnotationError, match=r'highlight_train_release.jsonl:4: duplicate '
                                              r'qid, first on line 2 \(qid=1\)'):
        _build_train_set(root)


def test_window_outside_the_video_is_clipped_and_said_so(tmp_path):
    records = _records()
    records[0]['relevant_windows'] = [[8.0, 14.0]]   # runs past the end: clipped to 10
    records[1]['relevant_windows'] = [[12.0, 14.0]]  # after the end: dropped with its query
    root = _qvh_copy(tmp_path, records)
    with pytest.warns(UserWarning, match=r'1 window\(s\) extended outside \[0, duration\].*'
                                         r'clipped.*qids: \[0\].*1 window\(s\) lay entirely '
                                         r'outside.*\[1\].*1 query\(ies\).*dropped'):
        ds = _build_train_set(root)
    assert [ds.get_data_info(i)['qid'] for i in range(len(ds))] == [0, 2, 3]
    np.testing.assert_allclose(ds.get_data_info(0)['gt_windows'], [[8.0, 10.0]])


def test_highlight_annotations_nan_duration_and_duplicate_qid(tmp_path):
    from mmengine.registry import init_default_scope

    from mmvpeft.apis import load_config
    from mmvpeft.datasets import AnnotationError
    from mmvpeft.registry import DATASETS
    root = tmp_path / 'yt'
    (root / 'annotations').mkdir(parents=True)
    (root / 'videos').mkdir()
    ann = root / 'annotations' / 'youtube_highlight_train_release.jsonl'
    good = dict(qid=1, vid='a', duration=8.0, domain='dog', query='dog', label=[[1], [0]])
    init_default_scope('mmvpeft')
    for bad, problem in ((dict(good, qid=2, duration=float('nan')), r':2: "duration" must be '
                          r'a finite number > 0, got nan \(qid=2\)'),
                         (dict(good, vid='b'), r':2: duplicate qid, first on line 1'),
                         (dict(good, qid=3, label=[[1], [float('nan')]]),
                          r':2: field "label" holds NaN or inf \(qid=3\)')):
        ann.write_text(json.dumps(good) + '\n' + json.dumps(bad) + '\n')
        cfg = load_config(READ_YOUTUBE, cfg_options={'data_root': str(root)})
        with pytest.raises(AnnotationError, match=re.escape(str(ann)) + problem):
            DATASETS.build(cfg.train_dataloader.dataset)


def test_retrieval_blank_caption_names_file_and_vid(tmp_path):
    from mmvpeft.datasets import AnnotationError
    from mmvpeft.registry import DATASETS
    ann = tmp_path / 'ann.jsonl'
    ann.write_text(json.dumps(dict(vid='v0', captions=['a dog runs', '  '], video='v0.mp4'))
                   + '\n')
    with pytest.raises(AnnotationError, match=re.escape(str(ann)) + r':1.*v0'):
        DATASETS.build(dict(type='VideoTextRetrievalDataset', ann_file=str(ann),
                            data_root=str(tmp_path), video_dir='.', check_files=False))


# ---------------------------------------------------------------- feature files

def test_features_shorter_than_the_duration_warn_once_with_count_and_worst_ratio(tmp_path):
    records = _records(4, duration=20.0)   # 10 clips of 2 s each expected
    root = _qvh_copy(tmp_path, records, clips={'v1': 4, 'v3': 7})
    with pytest.warns(UserWarning) as record:
        _build_train_set(root)
    msgs = [str(w.message) for w in record if 'cover less than' in str(w.message)]
    assert len(msgs) == 1, msgs
    assert "2 of 4 video(s)" in msgs[0] and "vid='v1', 4 rows x 2 s = 8 s of 20 s" in msgs[0] \
        and 'ratio 0.40' in msgs[0]


def test_feature_file_of_the_wrong_width_is_named_with_the_expected_shape(tmp_path):
    root = _qvh_copy(tmp_path, _records())
    bad = osp.join(str(root), 'clip_features', 'v3.npz')
    np.savez(bad, features=np.zeros((5, 9), np.float32))
    with pytest.raises(ValueError, match=re.escape(bad) + r' is 9 wide, expected video '
                                                          r'feature width 8'):
        _build_train_set(root)


def test_features_of_another_width_than_the_config_name_the_file_and_key(tmp_path, load_tool):
    root = _qvh_copy(tmp_path, _records(), video_dim=10)  # every file 10 wide; config: 8
    with pytest.raises(ValueError, match=r"video_feat is 10 wide \(qid=\d+, file "
                       + re.escape(osp.join(str(root), 'clip_features')) + r".*model\.encoder"
                       r"\.video_dim=8: expected \(T, 8\)"):
        load_tool('train').main([QVH_FEATURES, '--work-dir', str(tmp_path / 'w'),
                                 '--cfg-options', f'data_root={root}',
                                 'model.encoder.video_dim=8', 'model.encoder.text_dim=6',
                                 'train_dataloader.num_workers=0',
                                 'val_dataloader.num_workers=0'])


def test_truncated_npz_is_named(tmp_path):
    root = _qvh_copy(tmp_path, _records())
    bad = osp.join(str(root), 'clip_text_features', 'qid1.npz')
    with open(bad, 'rb') as f:
        head = f.read(40)
    with open(bad, 'wb') as f:
        f.write(head)
    with pytest.raises(OSError, match=re.escape(bad) + r" \(qid=1\): it is truncated"):
        _build_train_set(root)


# ---------------------------------------------------------------- configs

def test_top_level_typo_fails_with_did_you_mean_and_helpers_are_allowed(tmp_path, load_tool):
    cfg = tmp_path / 'my_config.py'
    cfg.write_text(f'_base_ = [{DEMO!r}]\ntrian_cfg = dict(max_epochs=1)\n')
    with pytest.raises(KeyError, match=r'my_config.py: unknown top-level key "trian_cfg"; did '
                                       r'you mean "train_cfg"'):
        load_tool('train').main([str(cfg), '--work-dir', str(tmp_path / 'w')])
    from mmvpeft.apis import load_config
    cfg.write_text(f'_base_ = [{DEMO!r}]\nmy_helper = 3\n_train_notes = "x"\n')
    assert load_config(str(cfg)).my_helper == 3  # user variables are not flagged


def test_every_shipped_config_passes_the_checks():
    """The helper-variable rule on real configs: none of their variables is flagged."""
    import glob

    from mmvpeft.apis.config_checks import check_hook_args, check_top_level_keys, read_config
    configs = [p for p in glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'),
                                    recursive=True) if '_base_' not in p]
    assert len(configs) >= 12
    for path in configs:
        cfg = read_config(path)
        check_top_level_keys(cfg, path)
        check_hook_args(cfg)


def test_hook_argument_typo_fails_before_training(tmp_path, load_tool):
    work = tmp_path / 'w'
    with pytest.raises(TypeError, match=r'default_hooks.checkpoint \(CheckpointHook\): unknown '
                                        r'argument "save_bset"; did you mean "save_best"'):
        load_tool('train').main([DEMO, '--work-dir', str(work), *_opts(
            str(tmp_path / 'data'), extra=('default_hooks.checkpoint.save_bset=mIoU', ))])
    assert not work.exists() and not (tmp_path / 'data').exists()  # nothing ran


def test_short_run_ends_at_the_final_lr_of_its_schedule(trained):
    """train_cfg.max_epochs=2 of a 40-epoch schedule: warm-up [0, 1], cosine [1, 2]; the last
    step trains at the cosine's last value (it reaches eta_min at the end)."""
    ckpt = torch.load(trained['ckpt'], map_location='cpu', weights_only=True)
    lr = ckpt['optimizer']['param_groups'][0]['lr']
    iters = ckpt['meta']['iter'] // 2  # iterations per epoch = the cosine's length
    peak, eta_min = 1e-3, 1e-6
    expected = eta_min + (peak - eta_min) * (1 + math.cos(math.pi * (iters - 1) / iters)) / 2
    assert lr == pytest.approx(expected, rel=1e-9) and lr < 0.3 * peak
    from mmvpeft.apis import load_config
    kept = load_config(DEMO, cfg_options={'train_cfg.max_epochs': 2, 'scale_schedule': False})
    assert [s['end'] for s in kept.param_scheduler] == [2, 40]  # would end at peak LR


def test_one_epoch_run_drops_the_warm_up_and_decays_over_the_run():
    """max_epochs=1 leaves no room for a whole-epoch warm-up; half an epoch would become 0
    iterations when an epoch is one iteration (MMEngine then refuses the empty phase)."""
    from mmvpeft.apis import load_config
    cfg = load_config(DEMO, cfg_options={'train_cfg.max_epochs': 1})
    assert [(s['type'], s['begin'], s['end']) for s in cfg.param_scheduler] == [
        ('CosineAnnealingLR', 0, 1)]


# ---------------------------------------------------------------- knobs

def _build(cfg_dict):
    from mmengine.registry import init_default_scope
    init_default_scope('mmvpeft')
    from mmvpeft.registry import DATASETS, MODELS, TRANSFORMS
    return DATASETS, MODELS, TRANSFORMS


def test_data_root_from_cfg_options_and_from_a_child_config(tmp_path):
    from mmvpeft.apis import load_config
    root = _qvh_copy(tmp_path, _records())
    ds = _build_train_set(root)
    assert ds.ann_file == osp.join(str(root), 'annotations', 'highlight_train_release.jsonl')
    # The pipeline is left as configured; the item carries data_root and the loader joins
    # its relative folder to it.
    assert ds.pipeline.transforms[0].feat_dirs == ['clip_features']
    item = ds.get_data_info(0)
    assert item['data_root'] == str(root)
    assert ds.pipeline.transforms[0](item)['video_feat_files'][0].startswith(
        osp.join(str(root), 'clip_features') + os.sep)
    child = tmp_path / 'mine.py'
    child.write_text(f'_base_ = [{QVH_FEATURES!r}]\ndata_root = {str(root)!r}\n')
    DATASETS, _, _ = _build(None)
    ds = DATASETS.build(load_config(str(child)).val_dataloader.dataset)
    assert ds.ann_file == osp.join(str(root), 'annotations', 'highlight_val_release.jsonl')
    item = ds.get_data_info(0)
    assert ds.pipeline.transforms[1](item)['text_feat_file'].startswith(
        osp.join(str(root), 'clip_text_features') + os.sep)



def test_data_root_moves_the_qa_answer_vocabulary_with_the_datasets(tmp_path):
    """tokenmix_msrvtt_qa.py: the model's answer vocabulary lives under data_root too, so
    the one knob moves it with the datasets (else train and test would label answers from
    different files)."""
    from mmvpeft.apis import load_config
    config = osp.join(REPO_ROOT, 'configs', 'tokenmix_msrvtt_qa.py')
    cfg = load_config(config, cfg_options={'data_root': str(tmp_path)})
    assert cfg.model.answer_vocab.data_root == str(tmp_path)
    assert {cfg[f'{s}_dataloader'].dataset.data_root for s in ('train', 'val', 'test')} == {
        str(tmp_path)}
    child = tmp_path / 'mine.py'
    child.write_text(f'_base_ = [{config!r}]\ndata_root = {str(tmp_path)!r}\n')
    assert load_config(str(child)).model.answer_vocab.data_root == str(tmp_path)

@pytest.fixture
def tiny_open_clip(tmp_path):
    """A 4-block open_clip model name (READ sits in the last 4 blocks) and a file of its
    weights, for the clip_model_name / clip_pretrained knobs of read_tacos.py."""
    import open_clip
    cfg = dict(embed_dim=32, vision_cfg=dict(image_size=32, patch_size=16, width=32, layers=4,
                                             head_width=16),
               text_cfg=dict(context_length=16, width=32, heads=2, layers=4))
    path = tmp_path / 'mmvpeft-bad-input-tiny.json'
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(str(path))
    torch.manual_seed(1)
    weights = tmp_path / 'tiny.pt'
    torch.save(open_clip.create_model('mmvpeft-bad-input-tiny').state_dict(), weights)
    return 'mmvpeft-bad-input-tiny', str(weights)


def test_clip_model_name_and_clip_pretrained_change_the_built_towers(tiny_open_clip, tmp_path):
    import open_clip

    from mmvpeft.apis import load_config
    name, weights = tiny_open_clip
    _, MODELS, _ = _build(None)
    cfg = load_config(READ_TACOS, cfg_options={'clip_model_name': name,
                                               'clip_pretrained': weights})
    tower = MODELS.build(cfg.model.video_backbone)
    ref = torch.load(weights, weights_only=True)
    got = {k: v for k, v in tower.state_dict().items() if 'conv1' in k}
    assert got and all(torch.equal(v, ref['visual.conv1.weight']) for v in got.values())
    assert open_clip.get_model_config(name)['vision_cfg']['width'] == 32
    # The same knobs set in a child config of read_tacos.py.
    child = tmp_path / 'mine.py'
    child.write_text(f'_base_ = [{READ_TACOS!r}]\nclip_model_name = {name!r}\n'
                     f'clip_pretrained = {weights!r}\n')
    cfg = load_config(str(child))
    assert cfg.model.text_backbone.model_name == name
    text = MODELS.build(cfg.model.text_backbone)
    assert torch.equal(text.state_dict()['token_embedding.weight'] if 'token_embedding.weight'
                       in text.state_dict() else next(v for k, v in text.state_dict().items()
                                                      if k.endswith('token_embedding.weight')),
                       ref['token_embedding.weight'])


def test_max_clips_from_cfg_options_and_child_changes_the_built_pipeline(tmp_path):
    from mmvpeft.apis import load_config
    _, _, TRANSFORMS = _build(None)
    for cfg in (load_config(READ_TACOS, cfg_options={'max_clips': 17}),):
        for split in ('train', 'val', 'test'):
            t = TRANSFORMS.build(cfg[f'{split}_dataloader'].dataset.pipeline[0])
            assert type(t).__name__ == 'LoadVideoClips' and t.max_clips == 17
    child = tmp_path / 'mine.py'
    child.write_text(f'_base_ = [{READ_TACOS!r}]\nmax_clips = 9\n')
    t = TRANSFORMS.build(load_config(str(child)).train_dataloader.dataset.pipeline[0])
    assert t.max_clips == 9
    # An explicitly set field wins over the knob.
    cfg = load_config(READ_TACOS, cfg_options={
        'max_clips': 17, 'val_dataloader.dataset.pipeline.0.max_clips': 5})
    assert cfg.val_dataloader.dataset.pipeline[0].max_clips == 5
    assert cfg.train_dataloader.dataset.pipeline[0].max_clips == 17


# ---------------------------------------------------------------- errors that say where

def test_zero_byte_and_truncated_checkpoints_are_named(trained, tmp_path, load_tool):
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(OSError, match=re.escape(str(empty)) + r' is empty \(0 bytes\)'):
        load_tool('test').main([DEMO, str(empty), *_opts(trained['data'])])
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(open(trained['ckpt'], 'rb').read()[:5000])
    with pytest.raises(OSError, match=re.escape(str(cut)) + r' is truncated'):
        load_tool('train').main([DEMO, '--load-from', str(cut), *_opts(trained['data'])])


def test_cfg_options_item_without_equals_sign(tmp_path, load_tool, capsys):
    for tool in ('train', 'test'):
        args = [DEMO] + (['none'] if tool == 'test' else [])
        with pytest.raises(SystemExit) as e:
            load_tool(tool).main(args + ['--cfg-options', 'a=1', 'train_cfg.max_epochs'])
        assert e.value.code == 2  # argparse's usage error, as the shell sees it
        err = capsys.readouterr().err
        assert "--cfg-options: 'train_cfg.max_epochs' is not KEY=VALUE" in err, err


def test_config_syntax_error_names_file_and_line(tmp_path, load_tool):
    cfg = tmp_path / 'broken.py'
    cfg.write_text(f'_base_ = [{DEMO!r}]\nmodel = dict(\n    head=dict(in_dim=64)\n')
    with pytest.raises(SyntaxError, match=re.escape(f'config file {cfg}, line 2')):
        load_tool('train').main([str(cfg)])


def test_partial_checkpoint_of_another_config_is_refused_unless_asked(trained, tmp_path,
                                                                      load_tool):
    other = ('model.head.hidden_dim=32', )
    with pytest.raises(RuntimeError, match=r'head\.\S+') as e:
        load_tool('test').main([DEMO, trained['ckpt'], '--work-dir', str(tmp_path / 'w'),
                                *_opts(trained['data'], extra=other)])
    assert 'size mismatch' in str(e.value) or 'mismatch' in str(e.value)
    metrics = load_tool('test').main([DEMO, trained['ckpt'], '--work-dir', str(tmp_path / 'w'),
                                      '--allow-partial-load',
                                      *_opts(trained['data'], extra=other)])
    assert 'mIoU' in metrics


# ---------------------------------------------------------------- checkpoints and outputs

def test_checkpoints_load_without_mmvpeft_and_follow_the_umask(trained, tmp_path):
    code = ('import sys, torch\n'
            f'c = torch.load({trained["ckpt"]!r}, weights_only=True)\n'
            "assert not [m for m in sys.modules if m.startswith(('mmvpeft', 'mmengine'))]\n"
            "print(sorted(c), c['meta']['epoch'])\n")
    proc = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True,
                          text=True, env={k: v for k, v in os.environ.items()
                                          if k != 'PYTHONPATH'})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "['message_hub', 'meta', 'optimizer', 'param_schedulers', 'state_dict'] 2" in \
        proc.stdout
    for name in ('epoch_2.pth', 'adapter_latest.safetensors', 'last_checkpoint'):
        assert os.stat(osp.join(trained['work'], name)).st_mode & 0o777 == 0o640, name


def test_single_and_multi_process_default_work_dirs_differ(monkeypatch):
    from mmvpeft.apis import default_work_dir, load_config
    assert load_config(DEMO).work_dir == osp.join('work_dirs', 'grounding_demo')
    monkeypatch.setenv('WORLD_SIZE', '2')
    assert default_work_dir(DEMO, 'pytorch') == osp.join('work_dirs', 'grounding_demo_2proc')
    assert default_work_dir(DEMO, 'none') == osp.join('work_dirs', 'grounding_demo')


# ================================================================ issue 17, branch i17-infer
# Inference tools refuse what datasets refuse: a blank query, ground-truth windows outside
# the video (tools/demo.py, init_grounder(...).predict, the web demo's request handler).

@pytest.fixture(scope='module')
def video_16s(tmp_path_factory):
    """One synthetic 16 s video and the READ demo's grounder (the model as built)."""
    from mmvpeft.apis import init_grounder
    from mmvpeft.datasets import generate_synthetic_videos
    root = tmp_path_factory.mktemp('video16')
    generate_synthetic_videos(str(root), num_videos=1, duration=16.0, fps=4, size=(64, 64))
    return str(root / 'videos' / 'synth_0000.mp4'), init_grounder(READ_DEMO, None,
                                                                  device='cpu')


@pytest.mark.parametrize('query', ['', '   ', '\t\n'])
def test_blank_query_is_refused_by_demo_predict_and_web_demo(query, video_16s, tmp_path,
                                                             load_tool):
    video, grounder = video_16s
    out = tmp_path / 'timeline.png'
    # The demo tool refuses it before building anything (the config need not even exist).
    with pytest.raises(ValueError, match=r'query \(the second argument\) is empty or blank'):
        load_tool('demo').main([video, query, '--config', str(tmp_path / 'none.py'),
                                '--out', str(out), '--device', 'cpu'])
    assert not out.exists()
    with pytest.raises(ValueError, match='query is empty or blank'):
        grounder.predict(video, query)
    with pytest.raises(ValueError, match='query of pair 1 is empty or blank'):
        grounder.predict_batch([(video, 'a red circle'), (video, query)])
    with pytest.raises(ValueError, match='query is empty or blank'):
        load_tool('web_demo').answer(grounder, video, query)
    with pytest.raises(ValueError, match='video: upload a video first'):
        load_tool('web_demo').answer(grounder, None, 'a red circle')


@pytest.mark.parametrize('window, problem', [
    ((20, 40), r'\[20, 40\] s lies outside the video, which is 16 s long'),
    ((-2, 3), r'\[-2, 3\] s lies outside the video'),
    ((5, 3), r'\[5, 3\] is reversed or empty'),
    ((1, float('nan')), r'\[1, nan\] is not finite'),
])
def test_gt_window_outside_the_video_is_refused(window, problem, video_16s, tmp_path,
                                                load_tool):
    video, grounder = video_16s
    out = tmp_path / 'timeline.png'
    with pytest.raises(ValueError, match='--gt: window 1 ' + problem):
        load_tool('demo').main([video, 'a red circle', '--config', READ_DEMO, '--out',
                                str(out), '--device', 'cpu', '--gt', '1', '4',
                                '--gt', *map(str, window)])
    assert not out.exists()
    with pytest.raises(ValueError, match='gt_windows: window 1 ' + problem):
        grounder.predict(video, 'a red circle', gt_windows=[[1, 4], list(window)])


def test_gt_window_inside_the_video_is_kept(video_16s):
    video, grounder = video_16s
    result = grounder.predict(video, 'a red circle', gt_windows=[[2, 6], [12, 16.5]])
    assert result['duration'] == pytest.approx(16.0)
    assert result['gt_windows'] == [[2.0, 6.0], [12.0, 16.0]]  # within a clip: cut to 16 s

# ================================================================ i17-runner (issue 17)
# One run per work dir, options as typed, checkpoints an interrupted run left.

def _work_files(work):
    """{name: sha256} of the work dir's top-level files, and its log folders."""
    files = {n: hashlib.sha256(open(osp.join(work, n), 'rb').read()).hexdigest()
             for n in os.listdir(work) if osp.isfile(osp.join(work, n))}
    return files, sorted(n for n in os.listdir(work) if osp.isdir(osp.join(work, n)))


def test_second_training_on_a_work_dir_in_use_is_refused_naming_the_holder(tmp_path):
    from mmvpeft.utils.work_dir import LOCK_NAME
    work, data = tmp_path / 'w', str(tmp_path / 'data')
    train = [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), DEMO, '--work-dir',
             str(work)]
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    first = subprocess.Popen(train + _opts(data, epochs=10000, extra=(
        'default_hooks.checkpoint.interval=10000', 'default_hooks.logger.interval=10000')),
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not ((work / LOCK_NAME).exists() and (work / 'resolved_config.py').exists()):
            assert first.poll() is None and time.time() < deadline, 'first run did not start'
            time.sleep(0.2)
        before = _work_files(str(work))
        second = subprocess.run(train + _opts(data, epochs=3), cwd=tmp_path, env=env,
                                capture_output=True, text=True)
        assert second.returncode != 0
        assert f'is in use by another run: PID {first.pid} on host ' in second.stderr, \
            second.stderr[-2000:]
        assert '--share-work-dir' in second.stderr
        after = _work_files(str(work))
        # The first run's config, resolved config and log folder are as they were; the
        # second made no log folder. (The lock is the first run's own.)
        assert after == before and 'max_epochs=10000' in (work / 'grounding_demo.py').read_text()
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)  # released on SIGTERM too
        rc = first.wait(timeout=60)
    assert rc == 128 + signal.SIGTERM and not (work / LOCK_NAME).exists()


def test_cfg_options_value_keeps_spaces_and_non_ascii_from_the_shell(tmp_path):
    line = (f'{shlex.quote(sys.executable)} {shlex.quote(osp.join(REPO_ROOT, "tools", "test.py"))} '
            f'{shlex.quote(DEMO)} none --work-dir w --cfg-options data_root="data/v dir ü" '
            + ' '.join(f'{s}_dataloader.dataset.{o}' for s in ('val', 'test') for o in SMALL))
    proc = subprocess.run(['bash', '-c', line], cwd=tmp_path, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / 'data' / 'v dir ü' / 'annotations_val.jsonl').is_file()
    assert "data_root='data/v dir ü'" in (tmp_path / 'w' / 'resolved_config.py').read_text()


def test_cfg_options_knob_that_no_field_reads_is_refused(tmp_path, load_tool):
    with pytest.raises(KeyError, match=r'no field of .*read_demo\.py reads a top-level '
                                       r'"num_frames" \(unknown key'):
        load_tool('train').main([READ_DEMO, '--cfg-options', 'num_frames=1'])
    with pytest.raises(KeyError, match=r'"image_size" is a variable of .*set the fields that '
                                       r'hold its value instead: model\.video_backbone'):
        load_tool('train').main([READ_DEMO, '--cfg-options', 'image_size=48'])
    with pytest.raises(KeyError, match=r'"clip_pretrained" \(a knob that this config does '
                                       r'not use'):
        load_tool('test').main([READ_DEMO, 'none', '--cfg-options', 'clip_pretrained=x.pt'])
    assert not (tmp_path / 'work_dirs').exists()


def test_auto_resume_from_a_truncated_latest_checkpoint_offers_the_previous(
        trained, tmp_path, load_tool, monkeypatch):
    work = tmp_path / 'w'
    shutil.copytree(trained['work'], work)
    latest = work / 'epoch_2.pth'
    (work / 'last_checkpoint').write_text(str(latest))
    latest.write_bytes(latest.read_bytes()[:4000])
    argv = ['tools/train.py', DEMO, '--work-dir', str(work), '--resume',
            *_opts(trained['data'], epochs=3)]
    monkeypatch.setattr(sys, 'argv', argv)
    before = _snapshot(work)
    with pytest.raises(OSError) as e:
        load_tool('train').main(argv[1:])
    msg = str(e.value)
    assert f'the latest checkpoint {latest} (named in {work / "last_checkpoint"}) cannot be ' \
           'read' in msg and 'truncated' in msg, msg
    offered = ' '.join(['python', *argv[:4], *_opts(trained['data'], epochs=3), '--resume',
                        str(work / 'epoch_1.pth')])
    assert offered in msg, msg
    assert _snapshot(work) == before


def test_resume_with_another_optimizer_names_both_and_stale_temp_files_go(tmp_path, load_tool,
                                                                         capsys):
    from mmvpeft.engine.hooks import OptimizerMismatchError
    work, data = tmp_path / 'w', str(tmp_path / 'data')
    sgd = ('optim_wrapper.optimizer.type=SGD', 'optim_wrapper.optimizer.momentum=0.9')
    load_tool('train').main([DEMO, '--work-dir', str(work), *_opts(data, epochs=1, extra=sgd)])
    assert torch.load(work / 'epoch_1.pth', weights_only=True)['meta']['optimizer_type'] == 'SGD'
    # What a run killed during a checkpoint write leaves, beside files of the user's.
    stale = work / '.epoch_2.pth.k2j4_x9a.part.pth'
    stale.write_bytes(b'\0' * 1000)
    (work / '.epoch_2.pth.notes').write_text('mine')
    capsys.readouterr()
    with pytest.raises(OptimizerMismatchError) as e:  # AdamW, the config's own
        load_tool('train').main([DEMO, '--work-dir', str(work), '--resume',
                                 *_opts(data, epochs=2)])
    msg = str(e.value)
    assert f'cannot resume {work / "epoch_1.pth"}' in msg and 'saved by SGD' in msg and \
        'this run builds AdamW (optim_wrapper.optimizer.type)' in msg, msg
    assert '--load-from' in msg
    out = capsys.readouterr()
    assert 'removed 1 temporary file(s) of an interrupted write: .epoch_2.pth.k2j4_x9a.part.pth' \
        in out.out + out.err
    assert not stale.exists() and (work / '.epoch_2.pth.notes').read_text() == 'mine'
    assert not (work / 'run.lock').exists()
# ================================================================ end i17-runner

# ================================================================ i17-data (issue 17: identity
# of inputs, videos that lie, degenerate training, tools that keep what they measured)

def test_qid_7_and_str_7_in_one_file_name_both_lines(tmp_path):
    from mmvpeft.datasets import AnnotationError
    records = _records()
    records[3]['qid'] = '1'  # qid 1 is on line 2: both would load qid1.npz
    root = _qvh_copy(tmp_path, records)
    ann = osp.join(str(root), 'annotations', 'highlight_train_release.jsonl')
    with pytest.raises(AnnotationError, match=re.escape(
            f"{ann}:4: qid '1' (str) and qid 1 (int) at {ann}:2 are two different ids")):
        _build_train_set(root)


def test_train_and_val_sharing_qids_warn_with_count_and_examples(tmp_path):
    from types import SimpleNamespace

    from mmvpeft.apis import load_config
    from mmvpeft.engine.hooks import DataChecksHook
    from mmvpeft.registry import DATASETS
    root = _qvh_copy(tmp_path, _records())  # the same 4 queries in every split file
    cfg = load_config(QVH_FEATURES, cfg_options={'data_root': str(root)})
    train, val = (DATASETS.build(cfg[f'{s}_dataloader'].dataset) for s in ('train', 'val'))
    runner = SimpleNamespace(train_dataloader=SimpleNamespace(dataset=train),
                             _val_loop=SimpleNamespace(dataloader=SimpleNamespace(dataset=val)))
    msg = DataChecksHook().before_train(runner)
    assert msg.startswith('the val split shares 4 qid(s) (e.g. 0, 1, 2) and 4 (vid, text) '
                          "pair(s) (e.g. 'v0': 'query 0'")
    assert 'highlight_train_release.jsonl' in msg and 'highlight_val_release.jsonl' in msg
    assert 'DataChecksHook' in open(osp.join(REPO_ROOT, 'configs', '_base_',
                                             'default_runtime.py')).read()


def test_retrieval_with_batch_size_1_fails_at_the_first_step(tmp_path, load_tool):
    config = osp.join(REPO_ROOT, 'configs', 'demo', 'retrieval_demo.py')
    work = tmp_path / 'work'
    opts = [f'data_root={tmp_path / "data"}', 'train_dataloader.batch_size=1',
            'train_cfg.max_epochs=1', 'train_cfg.val_interval=100']
    for split in ('train', 'val', 'test'):
        opts += [f'{split}_dataloader.dataset.generator.num_train=2',
                 f'{split}_dataloader.dataset.generator.num_val=2']
    with pytest.raises(ValueError, match=r'contrastive batch of 1 item\(s\) holds 1 distinct'
                                         r'.*train_dataloader\.batch_size'):
        load_tool('train').main([config, '--work-dir', str(work), '--cfg-options', *opts])
    assert _written(str(work)) == []


def test_demo_tool_warns_on_a_lying_video_and_refuses_a_3_hour_one(tmp_path, load_tool,
                                                                   monkeypatch):
    import cv2
    import struct
    from mmvpeft.datasets.transforms import video_checks
    from mmvpeft.datasets.transforms.video_checks import VideoMemoryError

    def mp4(name, frames, size, stretch):
        path = str(tmp_path / name)
        w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), 4.0, size)
        for i in range(frames):
            w.write(np.full((size[1], size[0], 3), 9 * i % 256, np.uint8))
        w.release()
        data = bytearray(open(path, 'rb').read())
        pos = data.find(b'stts')  # every frame lasts `stretch` times longer than it should
        struct.pack_into('>I', data, pos + 16, struct.unpack_from('>I', data, pos + 16)[0]
                         * stretch)
        open(path, 'wb').write(bytes(data))
        return path

    demo = load_tool('demo')
    lies = mp4('lies.mp4', 64, (64, 64), 64)  # 16 s whose sample table says 1024 s
    with pytest.warns(UserWarning, match=re.escape(lies) + r'.*decoded 16\.00 s, container '
                      r'1024\.00 s'):
        demo.main([lies, 'a red circle moves up', '--config', READ_DEMO,
                   '--out', str(tmp_path / 'a.png')])
    assert osp.isfile(tmp_path / 'a.png')
    # 8 HD frames claimed to last 3 hours: refused before decoding, naming the knob.
    long = mp4('long.mp4', 8, (1280, 720), 5400)
    monkeypatch.setattr(video_checks, 'physical_memory_bytes', lambda: 16 * 2**30)
    with pytest.raises(VideoMemoryError, match=re.escape(long) + r'.*GiB.*bytes.*max_clips '
                       r'of the pipeline\'s LoadVideoClips.*--cfg-options max_clips=256'):
        demo.main([long, 'a red circle moves up', '--config', READ_DEMO,
                   '--out', str(tmp_path / 'b.png')])
    assert not osp.exists(tmp_path / 'b.png')
    # The knob the message names lets it through (and the lying timing is still reported).
    with pytest.warns(UserWarning, match=re.escape(long) + r'.*container 10800\.00 s'):
        result = demo.main([long, 'a red circle moves up', '--config', READ_DEMO,
                            '--out', str(tmp_path / 'b.png'), '--cfg-options', 'max_clips=16'])
    assert len(result['saliency']) == 16 and osp.isfile(tmp_path / 'b.png')

# ---------------------------------------------------------------- i18-ckpt (issue 18: memory)

def test_memory_benchmark_needs_synthetic_inputs(load_tool):
    with pytest.raises(SystemExit, match='--memory measures synthetic batches: add --synthetic'):
        load_tool('benchmark').main([READ_DEMO, '--memory', '--clips', '2'])


def test_memory_setting_without_a_frozen_prefix_says_so_and_the_others_run(load_tool, capsys):
    """A prefix cache needs a frozen prefix; with every tower training from block 0 the
    cache settings are reported as not run, with the reason, and the others still run."""
    results = load_tool('benchmark').main([
        READ_DEMO, '--synthetic', '--memory', '--memory-in-process', '--clips', '2',
        '--batch-size', '2', '--num-words', '4', '--cfg-options',
        'model.video_backbone.frozen=False', 'model.text_backbone.frozen=False'])
    out = capsys.readouterr().out
    assert [('error' in r) for r in results] == [False, False, True, True]
    assert out.count('not run (no tower of this model has a frozen prefix to cache') == 2
    assert all(r['saved_bytes'] > 0 for r in results[:2])


# ================================================================ branch i19 (issue 19) ====
# Curves, --show-dir and the web demo: bad input names the key, flag or file.

def _plot_curves_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'plot_curves', osp.join(REPO_ROOT, 'tools', 'analysis', 'plot_curves.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_i19_plot_curves_unknown_key_and_missing_logs(tmp_path):
    run = tmp_path / 'work' / '20260101_000000' / 'vis_data'
    run.mkdir(parents=True)
    (run / 'scalars.json').write_text(
        '{"lr": 0.1, "loss": 2.0, "epoch": 1, "iter": 1, "step": 1}\n'
        '{"R1@0.5": 10.0, "step": 1}\n')
    tool = _plot_curves_tool()
    with pytest.raises(SystemExit, match=r'no run logged "R@1".*training keys: loss, lr; '
                                         r'validation keys: R1@0\.5'):
        tool.main([str(tmp_path / 'work'), '--keys', 'R@1', '--out', str(tmp_path / 'c.png')])
    with pytest.raises(SystemExit, match='work dir not found: .*nowhere'):
        tool.main([str(tmp_path / 'nowhere'), '--out', str(tmp_path / 'c.png')])
    with pytest.raises(SystemExit, match=r'no \*/vis_data/scalars.json'):
        tool.main([str(tmp_path), '--out', str(tmp_path / 'c.png')])
    (run / 'scalars.json').write_text('{"loss": 1.0, "iter": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r'scalars.json:2: not JSON'):
        tool.main([str(tmp_path / 'work'), '--out', str(tmp_path / 'c.png')])
    assert not (tmp_path / 'c.png').exists()


def test_i19_show_dir_bad_show_num_and_unknown_model(tmp_path):
    from mmengine.config import Config

    from mmvpeft.visualization import add_show_dir
    cfg = Config.fromfile(DEMO)
    with pytest.raises(ValueError, match='--show-num must be >= 1, got 0'):
        add_show_dir(cfg, str(tmp_path / 'show'), 0)
    cfg.model = dict(type='NotAModel')
    with pytest.raises(KeyError, match="no visualizer for model type 'NotAModel'.*show_metric"):
        add_show_dir(cfg, str(tmp_path / 'show'), 4)


def test_i19_web_demo_needs_a_model_and_a_video_folder(load_tool):
    web_demo = load_tool('web_demo')
    with pytest.raises(SystemExit, match='give --config .*--retrieval-config'):
        web_demo.main([])
    with pytest.raises(SystemExit, match='--retrieval-config needs --video-dir'):
        web_demo.main(['--retrieval-config', 'configs/demo/retrieval_demo.py'])
# ============================================================ end of branch i19 section ====
