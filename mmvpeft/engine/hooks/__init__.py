from .adapter_export_hook import AdapterExportHook
from .param_report_hook import ParameterReportHook
from .safe_checkpoint_hook import SafeCheckpointHook

__all__ = ['AdapterExportHook', 'ParameterReportHook', 'SafeCheckpointHook']
