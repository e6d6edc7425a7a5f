"""Task assignment of ground truth to anchor points (no-grad modules)."""

from .task_aligned import Assignment, TaskAlignedAssigner

__all__ = ["Assignment", "TaskAlignedAssigner"]
