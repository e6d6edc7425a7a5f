"""Detection losses that return dicts of named terms."""

from .detection import DetectionLoss, total_loss

__all__ = ["DetectionLoss", "total_loss"]
