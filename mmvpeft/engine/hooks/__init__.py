from .param_report_hook import ParameterReportHook
from .safe_checkpoint_hook import SafeCheckpointHook

__all__ = ['ParameterReportHook', 'SafeCheckpointHook']
