"""The long moving-shape videos of the long-video benchmark come from the distribution the
frame model (configs/demo/read_long_demo.py) trains on: same colours, shapes, directions,
query wording, event lengths, frame rate and frame size."""
import inspect
import math
import os.path as osp
import re

import cv2
from mmengine.config import Config

from mmvpeft.datasets.synthetic.long_videos import write_long_shape_video
from mmvpeft.datasets.synthetic.videos import (_MAX_EVENT_S, _MIN_EVENT_S, COLORS,
                                               QUERY_TEMPLATES, SHAPES)

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def _template_match(query):
    for direction, templates in QUERY_TEMPLATES.items():
        for t in templates:
            pattern = '^' + t.format(color='(\\w+)', shape='(\\w+)') + '$'
            if re.match(pattern, query):
                return direction
    return None


def test_long_video_matches_the_training_videos_of_read_long_demo(tmp_path):
    gen = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'demo',
                                   'read_long_demo.py')).train_dataloader.dataset.generator
    defaults = inspect.signature(write_long_shape_video).parameters
    assert defaults['fps'].default == gen['fps']
    assert tuple(defaults['size'].default) == tuple(gen['size'])

    path = str(tmp_path / 'long.mp4')
    info = write_long_shape_video(path, 60.0, (52, 55), seed=3)
    cap = cv2.VideoCapture(path)
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    assert size == tuple(gen['size']) and math.isclose(cap.get(cv2.CAP_PROP_FPS), gen['fps'])
    cap.release()

    target, *distractors = info['events']
    assert len(distractors) >= 2  # a long video holds events besides the queried one
    assert _template_match(info['query']) == target['direction']
    for ev in info['events']:
        assert ev['color'] in COLORS and ev['shape'] in SHAPES
        assert ev['direction'] in QUERY_TEMPLATES
        assert _template_match(ev['query']) == ev['direction']
    for ev in distractors:
        # as in a training video: other colours than the queried one, 2-8 s, whole seconds
        assert ev['color'] != target['color']
        assert _MIN_EVENT_S <= ev['end'] - ev['start'] <= _MAX_EVENT_S
        assert ev['start'] == int(ev['start'])
    spans = sorted((ev['start'], ev['end']) for ev in info['events'])
    assert all(b[0] - a[1] >= 1 for a, b in zip(spans, spans[1:]))  # 1 s apart at least
