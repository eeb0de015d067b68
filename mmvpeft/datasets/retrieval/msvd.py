"""MSVD retrieval in the layout of CLIP4Clip's release (``msvd_data.zip``).

Files under ``data_root``::

    raw-captions.pkl                {vid: [caption, ...]}; a caption is a list of words
                                    (joined with spaces) or a str
    train_list.txt, val_list.txt, test_list.txt   one vid per line
    videos/{vid}.avi                the YouTubeClips

Every caption is a query, and a video matches each of its captions (about 40 a video).
"""
import pickle
from typing import Dict, List, Optional

from mmvpeft.registry import DATASETS
from ..base import AnnotationError, join_root
from .base import VideoTextRetrievalDataset


@DATASETS.register_module()
class MSVDRetrievalDataset(VideoTextRetrievalDataset):
    """MSVD (1,200 / 100 / 670 videos) in CLIP4Clip's layout.

    ``raw-captions.pkl`` is a pickle: unpickling runs code from the file, so load only the
    file from a source you trust.

    Args:
        split: ``'train'``, ``'val'`` or ``'test'``: reads ``{split}_list.txt`` (the item
            layout follows ``test_mode``).
        split_file: List file relative to ``data_root``; overrides ``split``.
        ann_file: The caption pickle.
        video_dir: Video folder, relative to ``data_root``.
        video_ext: Extension of the video files.
        **kwargs: As :class:`VideoTextRetrievalDataset`.
    """

    def __init__(self,
                 split: str = 'train',
                 split_file: Optional[str] = None,
                 ann_file: str = 'raw-captions.pkl',
                 video_dir: Optional[str] = 'videos',
                 video_ext: str = '.avi',
                 **kwargs) -> None:
        if split_file is None:
            if split not in ('train', 'val', 'test'):
                raise ValueError(f'split must be train, val or test (or give split_file), '
                                 f'got {split!r}')
            split_file = f'{split}_list.txt'
        self.split, self._split_file = split, split_file
        super().__init__(ann_file=ann_file, video_dir=video_dir, video_ext=video_ext, **kwargs)

    def load_videos(self) -> List[Dict]:
        split_file = self._require_file(join_root(self.data_root, self._split_file),
                                        'split_file')
        ann_file = self._require_file(self.ann_file, 'ann_file (raw-captions.pkl)')
        with open(ann_file, 'rb') as f:
            try:
                captions = pickle.load(f)
            except Exception as e:  # any unpickling failure means a bad file
                raise AnnotationError(f'{ann_file}: cannot unpickle ({type(e).__name__}: '
                                      f'{e})') from e
        if not isinstance(captions, dict):
            raise AnnotationError(f'{ann_file}: expected a dict vid -> captions, got '
                                  f'{type(captions).__name__}')
        videos = []
        with open(split_file, encoding='utf-8') as f:
            for lineno, line in enumerate(f, 1):
                vid = line.strip()
                if not vid:
                    continue
                where = f'{split_file}:{lineno}'
                if vid not in captions:
                    raise AnnotationError(f'{where}: vid {vid!r} has no entry in {ann_file}')
                raw = captions[vid]
                if not isinstance(raw, (list, tuple)) or not raw:
                    raise AnnotationError(f'{ann_file}: [{vid!r}] must be a non-empty list of '
                                          f'captions, got {type(raw).__name__} (vid={vid!r})')
                texts = []
                for k, cap in enumerate(raw):
                    if isinstance(cap, (list, tuple)) and all(isinstance(w, str) for w in cap):
                        cap = ' '.join(cap)
                    if not isinstance(cap, str) or not cap.strip():
                        raise AnnotationError(f'{ann_file}: [{vid!r}][{k}] must be a list of '
                                              f'words or a non-empty str, got {cap!r:.80} '
                                              f'(vid={vid!r})')
                    texts.append(cap)
                videos.append(dict(vid=vid, captions=texts, where=where))
        return videos
