"""Old import path, kept so user code and configs (``custom_imports``) keep working: the
grounding datasets live in :mod:`mmvpeft.datasets.grounding`, the annotation error in
:mod:`mmvpeft.datasets.base`."""
from .base import AnnotationError  # noqa: F401
from .grounding.moment import MomentRetrievalDataset, clip_windows  # noqa: F401
