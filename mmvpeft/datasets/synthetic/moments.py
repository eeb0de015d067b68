"""A deterministic synthetic moment-retrieval set in the public feature layout.

Every video is a sequence of 2-second clip features: background noise, plus 2-3 events,
each a "concept" vector present in the clips of its window. A query's text features contain
that concept's word vector among filler words, so finding the queried moment is learnable
(match the word to its visual concept, then localise it) while a random window scores low.

Files are written once under ``data_root`` in exactly the layout real data uses::

    data_root/annotations_{train,val}.jsonl
    data_root/clip_features/{vid}.npz      ['features']          (T, video_dim)
    data_root/text_features/qid{qid}.npz   ['last_hidden_state'] (L, text_dim)
    data_root/synthetic_moment_manifest.json   parameters and the files written

Data safety (:mod:`~mmvpeft.datasets.synthetic.manifest`, the rule of every generator): only
files listed in the generator's own manifest are ever deleted; a non-empty ``data_root``
without it is refused with a ``FileExistsError`` naming the folder.
"""
import os
import os.path as osp

import numpy as np

from mmvpeft.utils.fileio import savez_atomic, write_jsonl
from .manifest import GeneratorManifest

MANIFEST_NAME = 'synthetic_moment_manifest.json'
_GENERATOR = 'mmvpeft.datasets.synthetic_moment'  # the old module path: see .manifest

DEFAULTS = dict(
    num_train_videos=320, num_val_videos=80, num_concepts=12, video_dim=64, text_dim=48,
    num_fillers=24, clip_len=2.0, min_clips=20, max_clips=40, events=(2, 3),
    event_clips=(2, 10), noise=0.6, seed=0)


def _make_split(rng, num_videos, split, p, concept_v, concept_t, fillers, out):
    """Draw one split; ``out`` collects ``{relative path: array or records}``."""
    records = []
    for v in range(num_videos):
        vid = f'{split}_{v:04d}'
        num_clips = int(rng.integers(p['min_clips'], p['max_clips'] + 1))
        duration = num_clips * p['clip_len'] - float(rng.uniform(0, p['clip_len']))
        feat = rng.normal(0, p['noise'], (num_clips, p['video_dim']))
        n_events = int(rng.integers(p['events'][0], p['events'][1] + 1))
        concepts = rng.choice(p['num_concepts'], n_events, replace=False)
        # Non-overlapping windows: cut the clip axis into n_events slots, one event each.
        bounds = np.linspace(0, num_clips, n_events + 1).astype(int)
        for k, c in enumerate(concepts):
            lo, hi = bounds[k], bounds[k + 1]
            length = int(rng.integers(p['event_clips'][0], min(p['event_clips'][1], hi - lo) + 1))
            start = int(rng.integers(lo, hi - length + 1))
            feat[start:start + length] += concept_v[c]
            s = start * p['clip_len'] + float(rng.uniform(0, 0.5))
            e = min((start + length) * p['clip_len'] - float(rng.uniform(0, 0.5)), duration)
            words = list(rng.choice(p['num_fillers'], int(rng.integers(2, 7)), replace=True))
            pos = int(rng.integers(0, len(words) + 1))
            text = np.stack([fillers[w] for w in words[:pos]] + [concept_t[c]] +
                            [fillers[w] for w in words[pos:]])
            text = text + rng.normal(0, 0.1, text.shape)
            qid = f'{vid}_{k}'
            # QVHighlights-style saliency (no draw from rng, so the features stay as they
            # were): 2-second clips of the event; three "annotators" score its clips 4 / 3 /
            # 2 in the middle and 2 / 2 / 1 at its two edge clips.
            num_sal = int(duration / p['clip_len'])
            ids = [i for i in range(start, start + length) if i < num_sal]
            edge = {ids[0], ids[-1]} if len(ids) > 2 else set()
            saliency = [[2, 2, 1] if i in edge else [4, 3, 2] for i in ids]
            out[f'text_features/qid{qid}.npz'] = dict(last_hidden_state=text.astype(np.float32))
            records.append(dict(qid=qid, query=f'concept {int(c)} happens', vid=vid,
                                duration=round(duration, 3),
                                relevant_windows=[[round(s, 3), round(e, 3)]],
                                relevant_clip_ids=ids, saliency_scores=saliency))
        out[f'clip_features/{vid}.npz'] = dict(features=feat.astype(np.float32))
    out[f'annotations_{split}.jsonl'] = records


def _draw_concepts(rng: np.random.Generator, p: dict) -> tuple:
    """The first draws of the generator's stream: ``(concept_v, concept_t, fillers)``."""
    # Concepts are unit vectors scaled to stand out of the noise; fillers carry no signal.
    concept_v = rng.normal(size=(p['num_concepts'], p['video_dim']))
    concept_v *= 1.5 / np.linalg.norm(concept_v, axis=1, keepdims=True) * np.sqrt(
        p['video_dim']) * p['noise'] / 2
    concept_t = rng.normal(size=(p['num_concepts'], p['text_dim']))
    fillers = rng.normal(size=(p['num_fillers'], p['text_dim']))
    return concept_v, concept_t, fillers


def synthetic_concepts(**params) -> tuple:
    """The concept and filler vectors :func:`generate_synthetic_moments` draws for
    ``params`` (same seed, same vectors): ``concept_v (C, video_dim)``, ``concept_t (C,
    text_dim)``, ``fillers (F, text_dim)``. Lets other generators (long videos) plant the
    concepts a model trained on the set has learned."""
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise TypeError(f'unknown synthetic-data parameter(s): {sorted(unknown)}')
    p = {**DEFAULTS, **params}
    return _draw_concepts(np.random.default_rng(p['seed']), p)


def generate_synthetic_moments(data_root: str, **params) -> str:
    """Write the synthetic set under ``data_root`` unless an identical one is there.

    Args:
        data_root: output folder.
        **params: overrides of the generator parameters (see ``DEFAULTS``).

    Returns:
        str: ``data_root``.
    """
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise TypeError(f'unknown synthetic-data parameter(s): {sorted(unknown)}')
    p = {**DEFAULTS, **params}
    p['events'], p['event_clips'] = list(p['events']), list(p['event_clips'])
    # format 2 adds QVHighlights-style saliency to the same features and windows
    params = dict(p, format=2)
    owner = GeneratorManifest(data_root, MANIFEST_NAME, _GENERATOR)
    if owner.up_to_date(params):
        return data_root
    rng = np.random.default_rng(p['seed'])
    concept_v, concept_t, fillers = _draw_concepts(rng, p)
    files = {}  # drawn in memory first (a few MB), so the manifest lists them up front
    _make_split(rng, p['num_train_videos'], 'train', p, concept_v, concept_t, fillers, files)
    _make_split(rng, p['num_val_videos'], 'val', p, concept_v, concept_t, fillers, files)
    owner.begin(params, sorted(files))
    for sub in ('clip_features', 'text_features'):
        os.makedirs(osp.join(data_root, sub), exist_ok=True)
    for rel, content in files.items():
        path = osp.join(data_root, rel)
        if rel.endswith('.npz'):
            savez_atomic(path, **content)
        else:
            write_jsonl(path, content)
    owner.finish()
    return data_root
