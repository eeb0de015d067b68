from .highlight_metric import HighlightMetric
from .moment_retrieval_metric import MomentRetrievalMetric
from .qa_accuracy_metric import QAAccuracyMetric
from .qa_answer_dumper import QAAnswerDumper
from .retrieval_metric import RetrievalMetric
from .submission_dumper import MomentSubmissionDumper

__all__ = ['HighlightMetric', 'MomentRetrievalMetric', 'MomentSubmissionDumper', 'RetrievalMetric',
           'QAAccuracyMetric', 'QAAnswerDumper']
