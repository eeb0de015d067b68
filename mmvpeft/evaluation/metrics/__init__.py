from .caption_metric import CaptionMetric
from .highlight_metric import HighlightMetric
from .moment_retrieval_metric import MomentRetrievalMetric
from .prediction_dumper import PredictionDumper
from .qa_accuracy_metric import QAAccuracyMetric
from .qa_answer_dumper import QAAnswerDumper
from .retrieval_metric import RetrievalMetric
from .submission_dumper import MomentSubmissionDumper

__all__ = ['CaptionMetric', 'HighlightMetric', 'MomentRetrievalMetric', 'MomentSubmissionDumper',
           'PredictionDumper', 'QAAccuracyMetric', 'QAAnswerDumper', 'RetrievalMetric']
