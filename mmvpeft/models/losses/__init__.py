from .boundary_losses import GIoU1DLoss, L1BoundaryLoss
from .contrastive_loss import SymmetricInfoNCELoss
from .focal_loss import SigmoidFocalLoss
from .pvla_loss import PVLALoss

__all__ = ['GIoU1DLoss', 'L1BoundaryLoss', 'SigmoidFocalLoss', 'PVLALoss', 'SymmetricInfoNCELoss']
