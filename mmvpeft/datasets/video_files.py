"""File lookups shared by the datasets that read raw videos (retrieval, captioning, QA)."""
import os.path as osp
from typing import Dict


class VideoFilesMixin:
    """Annotation-file checks and per-item video paths.

    Expects ``data_root``, ``video_dir``, ``video_ext`` and ``frame_dir`` attributes (joined
    to ``data_root`` by the dataset).
    """

    def _require_file(self, path: str, what: str) -> str:
        """``path`` if it is a file, else a ``FileNotFoundError`` naming ``what`` and
        ``data_root``."""
        if not path or not osp.isfile(path):
            raise FileNotFoundError(f'{type(self).__name__}: {what} not found: {path!r} '
                                    f'(data_root={self.data_root!r})')
        return path

    def video_paths(self, item: Dict) -> Dict[str, str]:
        """``video_path`` (the item's ``video`` file name, or ``{vid}{video_ext}``, under
        ``video_dir``) and/or ``frame_dir`` (``frame_dir/{vid}``) of one annotation item."""
        paths = {}
        if self.video_dir is not None:
            name = item.get('video') or f'{item["vid"]}{self.video_ext or ""}'
            paths['video_path'] = osp.join(self.video_dir, name)
        if self.frame_dir is not None:
            paths['frame_dir'] = osp.join(self.frame_dir, item['vid'])
        return paths
