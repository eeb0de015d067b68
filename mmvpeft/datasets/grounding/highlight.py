"""Query-free highlight detection over per-clip labels: YouTube Highlights and TVSum.

Each line (the line/lighthouse and UniVTG jsonl) is ``{"qid", "vid", "duration", "query",
"domain", "label": [[...], ...]}`` with one ``label`` row per annotated clip:

* YouTube Highlights: ``(C, 1)`` in {0, 1} over 100-frame clips with a 50-frame stride,
  ``"clip": [[first_frame, last_frame], ...]`` and ``"fps"`` give their times;
* TVSum: ``(C, 20)`` importance scores (1-5) of 20 annotators over ``C`` equal clips of the
  video.

QVHighlights (joint moment retrieval and highlight detection) needs no class of its own: it
is a :class:`~mmvpeft.datasets.MomentRetrievalDataset` whose records carry
``relevant_clip_ids`` and ``saliency_scores``.

Text input. These sets have no real query: ``text_source='domain'`` (default) feeds the
domain name ("dog", "skiing", or TVSum's category code), ``'query'`` the record's ``query``
field (YouTube: the domain again; TVSum: the video title), ``'none'`` an empty string (the
text tower then sees only its start and end tokens).

Training target. The grounding head learns per-clip foreground from windows, so each record
gets ``gt_windows``: the runs of consecutive positive clips (YouTube: label > 0; TVSum: mean
annotator score above the video's median of those means). Its foreground probability is the
predicted saliency (``pred_saliency_scores``) that :class:`~mmvpeft.evaluation.HighlightMetric`
ranks per video, per domain.
"""
import os.path as osp
from typing import List, Optional, Sequence

import numpy as np

from mmvpeft.registry import DATASETS
from mmvpeft.utils.fileio import iter_jsonl
from ..base import AnnotationError
from .moment import MomentRetrievalDataset
from .validation import check_duration, check_feature_files, check_query, check_unique_qid

TEXT_SOURCES = ('domain', 'query', 'none')


def label_windows(record: dict, num_clips: int, protocol: str) -> np.ndarray:
    """``(C, 2)`` start/end seconds of the annotated clips of a record."""
    duration = float(record['duration'])
    if protocol == 'youtube' and record.get('clip') is not None and record.get('fps'):
        frames = np.asarray(record['clip'], dtype=np.float64).reshape(-1, 2)
        return np.clip(frames / float(record['fps']), 0, duration)
    edges = np.linspace(0, duration, num_clips + 1)
    return np.stack([edges[:-1], edges[1:]], 1)


def positive_runs(positive: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Merge runs of consecutive positive clips into ``(K, 2)`` windows in seconds."""
    out, start = [], None
    for i, pos in enumerate(list(positive) + [False]):
        if pos and start is None:
            start = i
        elif not pos and start is not None:
            out.append((windows[start, 0], windows[i - 1, 1]))
            start = None
    return np.asarray(out, dtype=np.float32).reshape(-1, 2)


@DATASETS.register_module()
class HighlightDataset(MomentRetrievalDataset):
    """YouTube Highlights / TVSum clips with labels, for the grounding model's saliency.

    Args:
        ann_file: the ``.jsonl`` (relative to ``data_root``).
        protocol: ``'youtube'`` or ``'tvsum'`` (how labels become positives, see module doc).
        text_source: ``'domain'``, ``'query'`` or ``'none'`` (see the module docstring).
        domains: keep only these domains (UMT and UniVTG train one model per domain); None
            keeps all.
        **kwargs: :class:`MomentRetrievalDataset` arguments (``data_root``, ``pipeline``,
            ``video_dir``, ``video_ext``, ``test_mode``, ...).

    Items carry ``qid``, ``vid``, ``query`` (the text input), ``duration``, ``domain``,
    ``clip_labels`` ``(C, A)``, ``label_windows`` ``(C, 2)`` seconds and ``gt_windows``.
    """

    def __init__(self, ann_file: str, protocol: str = 'youtube', text_source: str = 'domain',
                 domains: Optional[Sequence[str]] = None, **kwargs):
        if protocol not in ('youtube', 'tvsum'):
            raise ValueError(f'protocol must be "youtube" or "tvsum", got {protocol!r}')
        if text_source not in TEXT_SOURCES:
            raise ValueError(f'text_source must be one of {TEXT_SOURCES}, got {text_source!r}')
        self.protocol = protocol
        self.text_source = text_source
        self.domains = None if domains is None else [str(d) for d in domains]
        super().__init__(ann_file=ann_file, **kwargs)

    def load_data_list(self) -> List[dict]:
        ann_file = self.ann_file
        if not osp.isfile(ann_file):
            raise FileNotFoundError(f'annotation file not found: {ann_file} '
                                    f'(data_root={self.data_root!r})')
        data_list, seen = [], {}
        for lineno, r in iter_jsonl(ann_file, AnnotationError):
            where = f'{ann_file}:{lineno}'
            for key in ('qid', 'vid', 'duration', 'label', 'domain'):
                if r.get(key) is None:
                    raise AnnotationError(f'{where}: missing field "{key}" '
                                          f'(qid={r.get("qid")!r})')
            # NaN / inf / non-positive duration and duplicate qids fail here, naming the line.
            check_duration(r, ann_file, lineno, AnnotationError)
            check_unique_qid(r, ann_file, lineno, seen, AnnotationError)
            if self.text_source == 'query':
                check_query(dict(r, query=r.get('query') or ''), ann_file, lineno,
                            AnnotationError)
            if self.domains is not None and str(r['domain']) not in self.domains:
                continue
            try:
                labels = np.asarray(r['label'], dtype=np.float32)
            except (TypeError, ValueError) as e:
                raise AnnotationError(f'{where}: field "label" must be a (clips, annotators) '
                                      f'list of numbers (qid={r["qid"]!r})') from e
            labels = labels[:, None] if labels.ndim == 1 else labels
            if not np.isfinite(labels).all():
                raise AnnotationError(f'{where}: field "label" holds NaN or inf '
                                      f'(qid={r["qid"]!r})')
            if labels.ndim != 2 or not labels.size or float(r['duration']) <= 0:
                raise AnnotationError(f'{where}: field "label" must be a non-empty (clips, '
                                      f'annotators) list and duration > 0 '
                                      f'(qid={r["qid"]!r}, label shape {labels.shape})')
            windows = label_windows(r, len(labels), self.protocol)
            if len(windows) != len(labels):
                raise AnnotationError(f'{where}: {len(labels)} label rows but '
                                      f'{len(windows)} "clip" entries (qid={r["qid"]!r})')
            if self.protocol == 'youtube':
                positive = labels.max(1) > 0
            else:
                mean = labels.mean(1)
                positive = mean > np.median(mean)
            if self.text_source == 'domain':
                query = str(r['domain'])
            elif self.text_source == 'query':
                query = str(r.get('query') or '')
            else:
                query = ''
            info = dict(qid=r['qid'], vid=str(r['vid']), query=query,
                        duration=float(r['duration']), domain=str(r['domain']),
                        clip_labels=labels, label_windows=windows.astype(np.float32),
                        gt_windows=positive_runs(positive, windows))
            if self.video_dir is not None:
                info['video_path'] = osp.join(self.video_dir, info['vid'] + self.video_ext)
            if self.frame_dir is not None:
                info['frame_dir'] = osp.join(self.frame_dir, info['vid'])
            data_list.append(info)
        if not data_list:
            raise AnnotationError(f'{ann_file}: no usable video'
                                  + (f' in domains {self.domains}' if self.domains else ''))
        check_feature_files(data_list, getattr(self.pipeline, 'transforms', []), ann_file,
                            self.data_root)
        return data_list
