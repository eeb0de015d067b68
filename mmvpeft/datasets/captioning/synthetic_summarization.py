"""Video + transcript -> summary on the synthetic moving-shape videos (CPU demo, tests)."""
import zlib
from typing import Dict, List

import numpy as np

from mmvpeft.registry import DATASETS
from mmvpeft.utils.fileio import iter_jsonl
from ..moment_dataset import AnnotationError
from ..retrieval.synthetic import SyntheticRetrievalDataset

FILLER = (
    'hello and welcome back to the channel', 'thanks for watching this short clip',
    'make sure the lighting is good before you start', 'we filmed this one in the studio',
    'remember to subscribe for more videos like this', 'the background is a plain gray wall',
    'let me know in the comments what you think', 'this took a few tries to get right',
    'we will keep it short today', 'that is all for now and see you next time',
)
DIRECTION_WORDS = {'right': 'towards the right edge', 'left': 'towards the left edge',
                   'up': 'upwards to the top', 'down': 'downwards to the bottom'}


def synthetic_transcript(vid: str, color: str, shape: str, direction: str,
                         num_filler: int = 5) -> str:
    """A deterministic spoken-style transcript of one synthetic video.

    Three sentences name the colour, the shape and the motion, in a random order among
    ``num_filler`` filler sentences (seeded by the vid), so the summary has to be picked out
    of irrelevant talk.
    """
    rng = np.random.default_rng(zlib.crc32(vid.encode()))
    facts = [f'today the star of the video is {color}',
             f'what you see is a {shape}',
             f'watch it travel {DIRECTION_WORDS[direction]}']
    filler = [FILLER[i] for i in rng.choice(len(FILLER), num_filler, replace=False)]
    sentences = filler + facts
    order = rng.permutation(len(sentences))
    return ' . '.join(sentences[i] for i in order) + ' .'


def synthetic_summary(color: str, shape: str, direction: str) -> str:
    return {'right': 'a {c} {s} moves to the right', 'left': 'a {c} {s} moves to the left',
            'up': 'a {c} {s} moves up', 'down': 'a {c} {s} moves down'}[direction].format(
                c=color, s=shape)


@DATASETS.register_module()
class SyntheticSummarizationDataset(SyntheticRetrievalDataset):
    """The synthetic retrieval videos with a transcript each and a one-line summary.

    Items: ``vid``, ``captions`` = [summary], ``transcript``
    (:func:`synthetic_transcript`). Videos and attributes come from
    :func:`~mmvpeft.datasets.synthetic_retrieval.generate_synthetic_retrieval`.

    Args:
        num_filler: filler sentences per transcript.
        **kwargs: as :class:`SyntheticRetrievalDataset` (``data_root``, ``split``,
            ``generator``, ``pipeline``, ``test_mode``).
    """

    def __init__(self, num_filler: int = 5, **kwargs) -> None:
        self.num_filler = num_filler
        super().__init__(**kwargs)

    def load_videos(self) -> List[Dict]:
        ann_file = self._require_file(self.ann_file, 'ann_file')
        videos = []
        for lineno, rec in iter_jsonl(ann_file, AnnotationError):
            where = f'{ann_file}:{lineno}'
            missing = [k for k in ('vid', 'color', 'shape', 'direction') if k not in rec]
            if missing:
                raise AnnotationError(f'{where}: missing field(s) {missing}')
            attrs = (rec['color'], rec['shape'], rec['direction'])
            videos.append(dict(
                vid=rec['vid'], video=rec.get('video'), where=where,
                captions=[synthetic_summary(*attrs)],
                extra=dict(transcript=synthetic_transcript(rec['vid'], *attrs,
                                                           num_filler=self.num_filler))))
        return videos
