"""Old import path (named in older docs), kept so user code keeps working: the generator
lives in :mod:`mmvpeft.datasets.synthetic.videos`."""
from .synthetic.videos import (COLORS, MANIFEST_NAME, QUERY_TEMPLATES, SHAPES,  # noqa: F401
                               generate_synthetic_videos, split_annotations)
