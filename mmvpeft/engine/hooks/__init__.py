from .adapter_export_hook import AdapterExportHook
from .data_checks_hook import DataChecksHook
from .non_finite_check_hook import NonFiniteCheckHook, NonFiniteError
from .param_report_hook import ParameterReportHook
from .resume_check_hook import OptimizerMismatchError, ResumeCheckHook
from .safe_checkpoint_hook import SafeCheckpointHook

__all__ = ['AdapterExportHook', 'DataChecksHook', 'NonFiniteCheckHook', 'NonFiniteError',
           'ParameterReportHook', 'SafeCheckpointHook', 'OptimizerMismatchError', 'ResumeCheckHook']
