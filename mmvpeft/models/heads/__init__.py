from .answer_head import AnswerClassifierHead
from .dense_moment_head import DenseMomentHead, build_targets

__all__ = ['AnswerClassifierHead', 'DenseMomentHead', 'build_targets']
