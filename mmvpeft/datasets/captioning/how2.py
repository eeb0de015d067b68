"""How2 summarization (video + transcript -> summary), in the release's text layout."""
import os.path as osp
from typing import Dict, List, Optional

from mmvpeft.registry import DATASETS
from ..base import AnnotationError
from ..retrieval.base import VideoTextRetrievalDataset


def read_id_text_lines(path: str) -> Dict[str, Dict]:
    """``<video_id> <text>`` per line -> ``{id: {'text', 'where'}}`` (ids must be unique)."""
    out: Dict[str, Dict] = {}
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            where = f'{path}:{lineno}'
            parts = line.split(None, 1)
            if len(parts) < 2 or not parts[1].strip():
                raise AnnotationError(f'{where}: expected "<video_id> <text>", got {line!r:.80}')
            vid, text = parts
            if vid in out:
                raise AnnotationError(f'{where}: duplicate video id {vid!r} (first at '
                                      f'{out[vid]["where"]})')
            out[vid] = dict(text=text.strip(), where=where)
    return out


@DATASETS.register_module()
class How2SummarizationDataset(VideoTextRetrievalDataset):
    """How2 abstractive summarization (the 2000h release's ``en_sum`` text).

    Files under ``data_root``::

        sum_train/tran.tok.txt    <video_id> <tokenized transcript>   one video a line
        sum_train/desc.tok.txt    <video_id> <tokenized summary (the video description)>
        sum_cv/...  sum_devtest/...                                   val / test
        videos/{video_id}.mp4

    Each item: ``vid``, ``captions`` = [the summary] (the target and the reference),
    ``transcript`` (tokenize it with ``CLIPTokenizeChunks(key='transcript')``).

    Args:
        split: ``'train'`` (``sum_train``), ``'val'`` (``sum_cv``) or ``'test'``
            (``sum_devtest``); ``split_dir`` overrides.
        transcript_file, summary_file: file names inside the split folder.
        **kwargs: as :class:`VideoTextRetrievalDataset`.
    """

    SPLIT_DIRS = {'train': 'sum_train', 'val': 'sum_cv', 'test': 'sum_devtest'}

    def __init__(self, split: str = 'train', split_dir: Optional[str] = None,
                 transcript_file: str = 'tran.tok.txt', summary_file: str = 'desc.tok.txt',
                 video_dir: str = 'videos', **kwargs) -> None:
        if split_dir is None:
            if split not in self.SPLIT_DIRS:
                raise ValueError(f'split must be train, val or test (or give split_dir), got '
                                 f'{split!r}')
            split_dir = self.SPLIT_DIRS[split]
        self.split_dir = split_dir
        self.transcript_file, self.summary_file = transcript_file, summary_file
        super().__init__(ann_file=osp.join(split_dir, summary_file), video_dir=video_dir,
                         **kwargs)

    def load_videos(self) -> List[Dict]:
        summary_path = self._require_file(self.ann_file, 'summary file')
        transcript_path = self._require_file(
            osp.join(osp.dirname(summary_path), self.transcript_file), 'transcript file')
        summaries = read_id_text_lines(summary_path)
        transcripts = read_id_text_lines(transcript_path)
        no_tran = [v for v in summaries if v not in transcripts]
        if no_tran:
            raise AnnotationError(f'{summaries[no_tran[0]]["where"]}: video {no_tran[0]!r} has '
                                  f'no transcript in {transcript_path} ({len(no_tran)} such)')
        return [dict(vid=vid, captions=[s['text']], where=s['where'],
                     extra=dict(transcript=transcripts[vid]['text']))
                for vid, s in summaries.items()]
