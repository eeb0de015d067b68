from .boundary_losses import GIoU1DLoss, L1BoundaryLoss
from .focal_loss import SigmoidFocalLoss

__all__ = ['GIoU1DLoss', 'L1BoundaryLoss', 'SigmoidFocalLoss']
