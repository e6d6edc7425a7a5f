"""The first schedule (warmup + cosine/linear over the whole run), kept only until the trainer
switches to :func:`detforge.engine.schedule.build_lr_schedule`; delete it then, with its tests in
tests/core/test_engine_parts.py."""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch.optim import Optimizer

__all__ = ["WarmupDecaySchedule"]


@dataclass(frozen=True)
class WarmupDecaySchedule:
    """Per-iteration linear warmup, then cosine or linear decay from 1 to ``lrf`` (a factor).

    The decay runs over the whole training (``total_steps`` optimizer steps, warmup included);
    during the first ``warmup_steps`` every group's learning rate rises linearly from its start
    value (``warmup_bias_lr`` for bias groups, 0 otherwise) to the decayed value at that step,
    and momentum rises from ``warmup_momentum`` to ``momentum``.
    """

    total_steps: int
    warmup_steps: int = 0
    kind: str = "cosine"
    lrf: float = 0.01
    warmup_bias_lr: float = 0.1
    warmup_momentum: float = 0.8
    momentum: float = 0.937

    def __post_init__(self) -> None:
        if self.kind not in ("cosine", "linear"):
            raise ValueError(f"schedule.name: unknown schedule {self.kind!r}")
        if self.total_steps < 1:
            raise ValueError("total_steps must be at least 1")

    def factor(self, step: int) -> float:
        """Decay factor in [lrf, 1] at optimizer step ``step`` (0-based)."""
        t = min(max(step, 0) / max(self.total_steps - 1, 1), 1.0)
        if self.kind == "cosine":
            return self.lrf + (1 - self.lrf) * 0.5 * (1 + math.cos(math.pi * t))
        return 1.0 - (1.0 - self.lrf) * t

    def lr(self, step: int, base_lr: float, is_bias: bool = False) -> float:
        target = base_lr * self.factor(step)
        if step < self.warmup_steps:
            start = self.warmup_bias_lr if is_bias else 0.0
            return start + (target - start) * step / self.warmup_steps
        return target

    def momentum_at(self, step: int) -> float:
        if step < self.warmup_steps:
            w = step / self.warmup_steps
            return self.warmup_momentum + (self.momentum - self.warmup_momentum) * w
        return self.momentum

    def apply(self, optimizer: Optimizer, step: int) -> None:
        """Set every group's lr (from its ``initial_lr``) and momentum for ``step``."""
        mom = self.momentum_at(step)
        for g in optimizer.param_groups:
            g["lr"] = self.lr(step, g["initial_lr"], g.get("name") == "bias")
            if "betas" in g:
                g["betas"] = (mom, g["betas"][1])
            elif "momentum" in g:
                g["momentum"] = mom
