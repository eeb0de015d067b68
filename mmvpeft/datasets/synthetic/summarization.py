"""Transcripts and one-line summaries of the synthetic moving-shape videos
(:mod:`~mmvpeft.datasets.synthetic.retrieval`), for the video + transcript -> summary demo."""
import zlib

import numpy as np

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
