"""Experiment tracking (TensorBoard, MLflow, W&B) as training hooks built from ``track.*``.

Above ``engine`` (its hooks subclass engine.hooks.Hook), below ``crossval``, ``api`` and the
CLI, which add :func:`tracking_hooks` to the hooks of the runs they start. Importing it imports
no tracker package.
"""

from .hooks import tracking_hooks

__all__ = ["tracking_hooks"]
