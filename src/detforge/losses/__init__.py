"""Detection losses that return dicts of named terms."""

from .classification import ClassificationLoss, class_weights_from_labels, resolve_class_weights
from .detection import DetectionLoss, loss_kwargs_from_config, total_loss

__all__ = [
    "ClassificationLoss",
    "DetectionLoss",
    "class_weights_from_labels",
    "loss_kwargs_from_config",
    "resolve_class_weights",
    "total_loss",
]
