"""tools/extract_features.py on synthetic videos: the public layout, resumable after an
interruption, unreadable videos reported, and a feature config trains on its output."""
import json
import os
import os.path as osp

import numpy as np
import pytest

from mmvpeft.datasets import generate_synthetic_videos

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = dict(embed_dim=32,
            vision_cfg=dict(image_size=32, patch_size=16, width=32, layers=1, head_width=16),
            text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2, layers=1))


def test_extract_resume_report_and_train(tmp_path, load_tool, capsys):
    src = tmp_path / 'synthetic'
    ann = generate_synthetic_videos(str(src), num_videos=3, duration=8.0, fps=4, size=(64, 64))
    videos = src / 'videos'
    (videos / 'broken.mp4').write_bytes(b'not a video')
    (tmp_path / 'tiny.json').write_text(json.dumps(TINY))
    out = tmp_path / 'data'
    tool = load_tool('extract_features')
    args = [str(videos), str(out), '--ann', ann, '--model-cfg', str(tmp_path / 'tiny.json'),
            '--clip-len', '2.0', '--no-progress', '--device', 'cpu']

    first = tool.main(args + ['--max-videos', '2'])  # "interrupted" after two videos
    assert first['extracted'] == ['synth_0000'] and list(first['failed']) == ['broken']
    done = sorted(os.listdir(out / 'clip_features'))
    stamps = {n: os.stat(out / 'clip_features' / n).st_mtime_ns for n in done}
    second = tool.main(args)
    assert sorted(second['skipped']) == [osp.splitext(n)[0] for n in done]
    assert set(first['extracted']).isdisjoint(second['extracted'])
    for n in done:  # finished videos are not redone
        assert os.stat(out / 'clip_features' / n).st_mtime_ns == stamps[n]
    assert 'broken' in second['failed']
    assert 'broken' in capsys.readouterr().err
    report = json.loads((out / 'extract_report.json').read_text())
    assert 'broken' in report['failed']

    feats = np.load(out / 'clip_features' / 'synth_0000.npz')['features']
    assert feats.shape == (4, 32) and feats.dtype == np.float32  # 8 s / 2 s clips, embed 32
    records = [json.loads(line) for line in open(ann)]
    text = np.load(out / 'clip_text_features' / f'qid{records[0]["qid"]}.npz')
    words = len(records[0]['query'].split())
    assert text['last_hidden_state'].shape[1] == 32
    assert text['last_hidden_state'].shape[0] >= words + 2  # SOT + words + EOT

    # the QVHighlights feature config trains on this output, with data_root as the only knob
    (out / 'annotations').mkdir()
    for split in ('train', 'val'):
        with open(out / 'annotations' / f'highlight_{split}_release.jsonl', 'w') as f:
            for r in records:  # QVHighlights saliency: every clip of the moment scores 4/3/2
                s, e = r['relevant_windows'][0]
                ids = list(range(int(s // 2), min(int(np.ceil(e / 2)), int(r['duration'] // 2))))
                f.write(json.dumps(dict(r, relevant_clip_ids=ids,
                                        saliency_scores=[[4, 3, 2]] * len(ids))) + '\n')
    opts = [f'{s}_dataloader.dataset.data_root={out}' for s in ('train', 'val', 'test')]
    opts += ['model.encoder.video_dim=32', 'model.encoder.text_dim=32',
             'model.encoder.dim=32', 'model.encoder.num_heads=2', 'model.head.in_dim=32',
             'model.head.hidden_dim=16', 'train_cfg.max_epochs=1',
             'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
             'val_dataloader.num_workers=0', 'default_hooks.checkpoint.save_best=None']
    work = tmp_path / 'work'
    config = osp.join(REPO_ROOT, 'configs', 'grounding_qvhighlights_features.py')
    load_tool('train').main([config, '--work-dir', str(work), '--cfg-options', *opts])
    assert (work / 'epoch_1.pth').is_file()
    assert (work / 'adapter_latest.safetensors').is_file()
    scalars = [json.loads(line) for p in work.glob('*/vis_data/scalars.json')
               for line in open(p)]
    assert any('R1@0.5' in s and 'HL-min-VeryGood-mAP' in s for s in scalars) and all(np.isfinite(s.get('loss', 0))
                                                       for s in scalars)


def test_two_processes_write_the_same_files_as_one_and_resume(tmp_path, load_tool):
    """tools/dist_extract.sh with 2 gloo processes, resuming a run interrupted after one
    video, ends with byte-for-byte the arrays one process writes, and one merged report."""
    import subprocess
    import sys
    src = tmp_path / 'synthetic'
    ann = generate_synthetic_videos(str(src), num_videos=3, duration=4.0, fps=4, size=(64, 64))
    (tmp_path / 'tiny.json').write_text(json.dumps(TINY))
    videos, one, two = src / 'videos', tmp_path / 'one', tmp_path / 'two'
    args = ['--model-cfg', str(tmp_path / 'tiny.json'), '--no-progress', '--device', 'cpu']
    tool = load_tool('extract_features')
    tool.main([str(videos), str(one), '--ann', ann, *args])
    # The interrupted run: one video done, no query yet.
    tool.main([str(videos), str(two), *args, '--max-videos', '1'])
    args = ['--ann', ann, *args]
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO_ROOT, PORT='29541')
    proc = subprocess.run(['bash', osp.join(REPO_ROOT, 'tools', 'dist_extract.sh'), '2',
                           str(videos), str(two), *args], env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # rank 0 prints the merged report once: 2 new videos, 1 skipped, the 3 queries
    assert proc.stdout.count('extracted 2 video(s), skipped 1 already done, 3 query') == 1, \
        proc.stdout
    for sub in ('clip_features', 'clip_text_features'):
        names = sorted(os.listdir(one / sub))
        assert names and names == sorted(os.listdir(two / sub)), sub
        for n in names:
            a, b = np.load(one / sub / n), np.load(two / sub / n)
            assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files), n
    report = json.loads((two / 'extract_report.json').read_text())
    assert report['processes'] == 2 and len(report['extracted']) == 2
    assert report['skipped'] == ['synth_0000'] and report['queries'] == 3
