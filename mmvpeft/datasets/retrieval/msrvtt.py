"""MSR-VTT retrieval in the layout of CLIP4Clip's release (``msrvtt_data.zip``).

Files under ``data_root``::

    MSRVTT_data.json          {"videos": [...], "sentences": [{"video_id", "caption", ...}]}
    MSRVTT_train.9k.csv       column "video_id": the 9k training videos (7k: train.7k.csv)
    MSRVTT_JSFUSION_test.csv  columns "key", "vid_key", "video_id", "sentence": the 1k-A
                              test, one caption per video
    videos/video{N}.mp4

A split CSV with a ``sentence`` column supplies its own captions (one per row, grouped by
video in file order); one without lists video ids whose captions are all the sentences of
``MSRVTT_data.json`` for that video (20 per video: training then sees every pair, as
CLIP4Clip with ``--expand_msrvtt_sentences``).
"""
import csv
import json
from typing import Dict, List, Optional, Tuple

from mmvpeft.registry import DATASETS
from ..base import AnnotationError, join_root
from .base import VideoTextRetrievalDataset


@DATASETS.register_module()
class MSRVTTRetrievalDataset(VideoTextRetrievalDataset):
    """MSR-VTT (9k train / 1k-A test) in CLIP4Clip's layout.

    Args:
        split: ``'train'`` (``MSRVTT_train.9k.csv``) or ``'test'``
            (``MSRVTT_JSFUSION_test.csv``); chooses the default ``split_file`` only, the
            item layout follows ``test_mode``.
        split_file: CSV of the split, relative to ``data_root``; overrides ``split``.
        ann_file: ``MSRVTT_data.json`` (read only when the split CSV has no ``sentence``).
        video_dir: Video folder, relative to ``data_root``.
        **kwargs: As :class:`VideoTextRetrievalDataset`.
    """

    SPLIT_FILES = {'train': 'MSRVTT_train.9k.csv', 'test': 'MSRVTT_JSFUSION_test.csv'}

    def __init__(self,
                 split: str = 'train',
                 split_file: Optional[str] = None,
                 ann_file: str = 'MSRVTT_data.json',
                 video_dir: Optional[str] = 'videos',
                 **kwargs) -> None:
        if split_file is None:
            if split not in self.SPLIT_FILES:
                raise ValueError(f'split must be one of {sorted(self.SPLIT_FILES)} or give '
                                 f'split_file, got {split!r}')
            split_file = self.SPLIT_FILES[split]
        self.split, self._split_file = split, split_file
        super().__init__(ann_file=ann_file, video_dir=video_dir, **kwargs)

    def _read_csv(self, path: str) -> Tuple[List[Dict], bool]:
        """Rows (each with a ``where`` = ``file:line``) and whether a ``sentence`` column exists."""
        with open(path, newline='', encoding='utf-8') as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or 'video_id' not in reader.fieldnames:
                raise AnnotationError(f'{path}:1: missing column "video_id" (header: '
                                      f'{reader.fieldnames})')
            rows = []
            for row in reader:
                # line_num is the physical line just read (the header is line 1).
                row['where'] = f'{path}:{reader.line_num}'
                if not (row.get('video_id') or '').strip():
                    raise AnnotationError(f'{row["where"]}: empty field "video_id"')
                rows.append(row)
            return rows, 'sentence' in reader.fieldnames

    def load_videos(self) -> List[Dict]:
        split_file = self._require_file(join_root(self.data_root, self._split_file),
                                        'split_file')
        rows, has_sentence = self._read_csv(split_file)
        videos: Dict[str, Dict] = {}
        if has_sentence:
            for row in rows:
                vid = row['video_id'].strip()
                if not (row.get('sentence') or '').strip():
                    raise AnnotationError(f'{row["where"]}: empty field "sentence" '
                                          f'(vid={vid!r})')
                videos.setdefault(vid, dict(vid=vid, captions=[], where=row['where']))
                videos[vid]['captions'].append(row['sentence'])
            return list(videos.values())

        for row in rows:
            vid = row['video_id'].strip()
            if vid in videos:
                raise AnnotationError(f'{row["where"]}: duplicate vid {vid!r} '
                                      f'(first at {videos[vid]["where"]})')
            videos[vid] = dict(vid=vid, captions=[], where=row['where'])
        ann_file = self._require_file(self.ann_file, 'ann_file (MSRVTT_data.json)')
        with open(ann_file, encoding='utf-8') as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise AnnotationError(f'{ann_file}: invalid JSON ({e})') from e
        sentences = data.get('sentences') if isinstance(data, dict) else None
        if not isinstance(sentences, list):
            raise AnnotationError(f'{ann_file}: missing list field "sentences"')
        for i, sent in enumerate(sentences):
            if not isinstance(sent, dict) or 'video_id' not in sent:
                raise AnnotationError(f'{ann_file}: sentences[{i}]: missing field "video_id"')
            vid = sent['video_id']
            if vid not in videos:
                continue
            caption = sent.get('caption')
            if not isinstance(caption, str) or not caption.strip():
                raise AnnotationError(f'{ann_file}: sentences[{i}]: field "caption" must be a '
                                      f'non-empty str, got {caption!r} (vid={vid!r})')
            videos[vid]['captions'].append(caption)
        empty = [v['vid'] for v in videos.values() if not v['captions']]
        if empty:
            raise AnnotationError(f'{ann_file}: no sentence for {len(empty)} video(s) of '
                                  f'{split_file}, e.g. vid={empty[0]!r} '
                                  f'(listed at {videos[empty[0]]["where"]})')
        return list(videos.values())
