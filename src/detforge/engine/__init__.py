"""Training engine: optimizer groups, schedules, EMA, checkpoints, hooks and the trainer."""

from .hooks import Hook

__all__ = ["Hook"]
