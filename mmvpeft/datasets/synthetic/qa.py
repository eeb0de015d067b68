"""Questions about the synthetic moving-shape videos (:mod:`~mmvpeft.datasets.synthetic.retrieval`):
their colour, shape and direction, read from the generator's annotation fields."""
from .retrieval import DIRECTIONS
from .videos import COLORS, SHAPES

#: question type -> (question, the annotation field holding its answer)
QUESTIONS = {
    'color': ('what color is the shape?', 'color'),
    'shape': ('what shape is moving?', 'shape'),
    'direction': ('which way does the shape move?', 'direction'),
}
#: Every answer the synthetic questions can have, in label order.
SYNTHETIC_ANSWERS = tuple(COLORS) + tuple(SHAPES) + tuple(DIRECTIONS)
