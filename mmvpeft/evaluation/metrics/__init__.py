from .highlight_metric import HighlightMetric
from .moment_retrieval_metric import MomentRetrievalMetric
from .retrieval_metric import RetrievalMetric
from .submission_dumper import MomentSubmissionDumper

__all__ = ['HighlightMetric', 'MomentRetrievalMetric', 'MomentSubmissionDumper', 'RetrievalMetric']
