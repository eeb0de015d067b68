"""mmvpeft registries: children of MMEngine's roots.

Each registry names the package that holds its components in ``locations``, so
``type='...'`` strings in a config resolve without manual imports once the
config sets ``default_scope='mmvpeft'``.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, locations=['mmvpeft.models'])
MODEL_WRAPPERS = Registry(
    'model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, locations=['mmvpeft.models'])
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, locations=['mmvpeft.datasets'])
DATA_SAMPLERS = Registry(
    'data sampler', parent=MMENGINE_DATA_SAMPLERS, locations=['mmvpeft.datasets'])
TRANSFORMS = Registry(
    'transform', parent=MMENGINE_TRANSFORMS, locations=['mmvpeft.datasets.transforms'])
FUNCTIONS = Registry('function', parent=MMENGINE_FUNCTIONS, locations=['mmvpeft.datasets'])
METRICS = Registry('metric', parent=MMENGINE_METRICS,
                   locations=['mmvpeft.evaluation', 'mmvpeft.visualization'])
EVALUATOR = Registry('evaluator', parent=MMENGINE_EVALUATOR, locations=['mmvpeft.evaluation'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, locations=['mmvpeft.engine.hooks'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=['mmvpeft.engine'])
OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS, locations=['mmvpeft.engine'])
OPTIM_WRAPPERS = Registry(
    'optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, locations=['mmvpeft.engine'])
PARAM_SCHEDULERS = Registry(
    'parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS, locations=['mmvpeft.engine'])
