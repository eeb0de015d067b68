"""Videos -> CLIP clip features and query text features, in the public layout the feature
datasets read (moment_detr / line-lighthouse)::

    OUT/clip_features/{vid}.npz          ['features']          (T, E)  one row per clip
    OUT/clip_text_features/qid{qid}.npz  ['last_hidden_state'] (L, W)  valid tokens only

A clip's row is the mean projected CLIP image embedding of its ``frames_per_clip`` frames
(the frames ``LoadVideoClips`` samples); text rows are the text tower's per-token states
after ``ln_final`` (``CLIPTextBackbone`` ``feats``), start to end token. Any open_clip model
works (``model_name`` + ``pretrained``, or a ``model_cfg`` dict).

Resumable: each file is written atomically and a video whose file exists is skipped, so an
interrupted run picks up where it stopped. Unreadable videos are listed in
``OUT/extract_report.json`` rather than stopping the run.

Across processes: with a ``torch.distributed`` process group initialised (``tools/
extract_features.py --launcher pytorch|slurm``, ``tools/dist_extract.sh``), rank r of W takes
videos r, r + W, ... of the sorted list and queries r, r + W, ... of the annotations. A
file's content does not depend on the rank that computes it, so W processes write the same
files as one; rank 0 writes one report for all of them.
"""
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from mmvpeft.utils.dist import all_gather_objects, rank_and_world
from mmvpeft.utils.fileio import iter_jsonl, savez_atomic, write_json_atomic

VIDEO_EXTS = ('.mp4', '.avi', '.mkv', '.webm', '.mov')


def list_videos(video_dir: str, exts: Sequence[str] = VIDEO_EXTS) -> List[str]:
    """Video files directly in ``video_dir``, sorted."""
    if not osp.isdir(video_dir):
        raise FileNotFoundError(f'video folder not found: {video_dir}')
    return sorted(osp.join(video_dir, n) for n in os.listdir(video_dir)
                  if n.lower().endswith(tuple(exts)))


def extract_features(video_dir: str, out_dir: str, ann_file: Optional[str] = None,
                     model_name: str = 'ViT-B-32', pretrained: Optional[str] = 'openai',
                     model_cfg: Optional[dict] = None, clip_len: float = 2.0,
                     frames_per_clip: int = 1, image_size: Optional[int] = None,
                     batch_size: int = 64, device: Optional[str] = None,
                     progress: bool = True, max_videos: Optional[int] = None) -> Dict:
    """Extract clip features for every video in ``video_dir`` and text features for the
    queries of ``ann_file``.

    Args:
        video_dir: folder of videos (``{vid}.mp4`` ...).
        out_dir: output root (the layout above).
        ann_file: optional JSON-lines annotations with ``qid`` and ``query``.
        model_name, pretrained, model_cfg: the open_clip model (see ``CLIPVisionBackbone``).
        clip_len: seconds per feature row (2.0 for the public releases).
        frames_per_clip: frames averaged per row.
        image_size: input size (default: the model's).
        batch_size: frames per forward pass.
        device: default CUDA when available (batched there), else CPU.
        progress: show tqdm progress bars.
        max_videos: stop after this many newly extracted videos (for tests / chunking; per
            process when several share the work).

    Returns:
        The report: ``extracted``, ``skipped`` (already done), ``failed`` (``{vid: reason}``),
        ``queries``, ``seconds``, ``device`` (and ``processes`` when more than one), the
        same on every rank.
    """
    from mmcv.transforms import Compose
    from tqdm import tqdm

    from mmvpeft.datasets.transforms import (FormatVideo, LoadVideoClips, VideoCenterCrop,
                                             VideoReadError, VideoResize)
    from mmvpeft.datasets.transforms.text import CLIPTokenize
    from mmvpeft.models.backbones import CLIPTextBackbone, CLIPVisionBackbone

    rank, world = rank_and_world()
    if device is None:
        local = int(os.environ.get('LOCAL_RANK', 0))
        device = f'cuda:{local}' if torch.cuda.is_available() and world > 1 else (
            'cuda' if torch.cuda.is_available() else 'cpu')
    t0 = time.time()
    kw = dict(model_name=model_name, pretrained=pretrained, model_cfg=model_cfg, frozen=True)
    if pretrained is None:  # random weights: the same in every process (and every run)
        torch.manual_seed(0)
    vision = CLIPVisionBackbone(**kw).to(device).eval()
    size = image_size or int(np.atleast_1d(vision.visual.image_size)[0])
    load = Compose([LoadVideoClips(clip_len=clip_len, frames_per_clip=frames_per_clip),
                    VideoResize(short_side=size), VideoCenterCrop(size=size), FormatVideo()])
    video_out = osp.join(out_dir, 'clip_features')
    text_out = osp.join(out_dir, 'clip_text_features')
    os.makedirs(video_out, exist_ok=True)
    os.makedirs(text_out, exist_ok=True)
    report = dict(extracted=[], skipped=[], failed={}, queries=0, device=device)
    todo = []
    # Shard the whole sorted list (not what is left to do), so every rank agrees on the
    # shards whatever the others have written meanwhile.
    for path in list_videos(video_dir)[rank::world]:
        vid = osp.splitext(osp.basename(path))[0]
        if osp.isfile(osp.join(video_out, vid + '.npz')):
            report['skipped'].append(vid)
        else:
            todo.append((vid, path))
    if max_videos is not None:
        todo = todo[:max_videos]
    with torch.no_grad():
        for vid, path in tqdm(todo, desc='videos', disable=not progress):
            try:
                imgs = load(dict(video_path=path, vid=vid))['imgs']  # (T, K, 3, H, W)
            except (VideoReadError, OSError, ValueError) as e:
                report['failed'][vid] = str(e)
                continue
            feats = []
            t, k = imgs.shape[:2]
            flat = imgs.reshape(t * k, *imgs.shape[2:])
            for lo in range(0, len(flat), batch_size):
                chunk = flat[lo:lo + batch_size].to(device)
                # (N, 3, H, W) -> (B=N, T=1, K=1, 3, H, W): one frame per call row.
                feats.append(vision(chunk[:, None, None])['feats'][:, 0].float().cpu())
            feat = torch.cat(feats).reshape(t, k, -1).mean(1).numpy().astype(np.float32)
            savez_atomic(osp.join(video_out, vid + '.npz'), features=feat)
            report['extracted'].append(vid)
        del vision
        if ann_file:
            if pretrained is None:
                torch.manual_seed(0)
            text = CLIPTextBackbone(**kw).to(device).eval()
            tokenize = CLIPTokenize(model_name=model_name, context_length=text.context_length,
                                    trim_padding=True)
            records = [r for _, r in iter_jsonl(ann_file)][rank::world]
            for r in tqdm(records, desc='queries', disable=not progress):
                path = osp.join(text_out, f'qid{r["qid"]}.npz')
                if osp.isfile(path):
                    continue
                tok = tokenize(dict(query=r['query']))
                tokens = torch.as_tensor(tok['text_tokens'])[None].to(device)
                mask = torch.as_tensor(tok['text_mask'])[None].bool().to(device)
                feats = text(tokens, mask)['feats'][0][mask[0]].float().cpu().numpy()
                savez_atomic(path, last_hidden_state=feats.astype(np.float32))
                report['queries'] += 1
    report['seconds'] = round(time.time() - t0, 2)
    report = _merge_reports(report, world)
    if rank == 0:
        write_json_atomic(osp.join(out_dir, 'extract_report.json'), report)
    return report


def _merge_reports(report: Dict, world: int) -> Dict:
    """One report for all ranks (every rank gets it): the union of the video lists (sorted),
    the failures, the sum of the queries and the longest rank's seconds."""
    if world == 1:
        return report
    reports = all_gather_objects(report)
    return dict(extracted=sorted(v for r in reports for v in r['extracted']),
                skipped=sorted(v for r in reports for v in r['skipped']),
                failed={k: v for r in reports for k, v in sorted(r['failed'].items())},
                queries=sum(r['queries'] for r in reports), device=report['device'],
                seconds=max(r['seconds'] for r in reports), processes=world)
