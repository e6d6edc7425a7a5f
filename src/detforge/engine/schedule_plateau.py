"""Reduce-on-plateau bookkeeping: the one schedule whose value depends on what it has seen.

The rules are those documented for ``torch.optim.lr_scheduler.ReduceLROnPlateau``:

- a value is an improvement when it beats ``best`` by more than the threshold: in ``min`` mode
  ``value < best * (1 - threshold)`` (rel) or ``value < best - threshold`` (abs); in ``max`` mode
  ``value > best * (1 + threshold)`` (rel) or ``value > best + threshold`` (abs);
- an improvement sets ``best`` and clears the count of bad observations, anything else (NaN
  included) adds one to it;
- while a cooldown is running, bad observations are not counted;
- once the count exceeds ``patience`` the lr is cut by ``factor`` (not below the floor), the
  cooldown starts and the count is cleared. A cut smaller than ``eps`` is not applied.

Here the lr is represented by ``reduction``, a multiplier of every group's initial lr, so that
group ratios survive the cuts; ``floor`` and ``eps`` are therefore also multipliers (the
schedule converts ``min_lr`` and PyTorch's absolute eps of 1e-8 by dividing by ``lr0``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["PlateauTracker"]


@dataclass
class PlateauTracker:
    """Counts observations without improvement and cuts ``reduction`` when patience runs out."""

    mode: str = "min"
    factor: float = 0.1
    patience: int = 10
    cooldown: int = 0
    threshold: float = 1e-4
    threshold_mode: str = "rel"
    floor: float = 0.0
    eps: float = 0.0
    reduction: float = 1.0
    best: float = field(default=math.nan)
    num_bad: int = 0
    cooldown_left: int = 0
    observations: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"schedule.mode: {self.mode!r} is not one of auto, min, max")
        if self.threshold_mode not in ("rel", "abs"):
            raise ValueError(f"schedule.threshold_mode: {self.threshold_mode!r} is not rel or abs")
        if math.isnan(self.best):
            # the worst possible value, so that the first observation is always an improvement
            self.best = math.inf if self.mode == "min" else -math.inf

    def improves(self, value: float) -> bool:
        """Whether ``value`` beats the best so far by more than the threshold."""
        if self.mode == "min":
            if self.threshold_mode == "rel":
                return value < self.best * (1.0 - self.threshold)
            return value < self.best - self.threshold
        if self.threshold_mode == "rel":
            return value > self.best * (1.0 + self.threshold)
        return value > self.best + self.threshold

    def update(self, value: float) -> bool:
        """Record one validation result; True when it caused a cut of the learning rate."""
        value = float(value)
        self.observations += 1
        if self.improves(value):
            self.best, self.num_bad = value, 0
        else:
            self.num_bad += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.num_bad = 0
        if self.num_bad <= self.patience:
            return False
        new = max(self.reduction * self.factor, self.floor)
        cut = self.reduction - new > self.eps
        if cut:
            self.reduction = new
        self.cooldown_left, self.num_bad = self.cooldown, 0
        return cut

    def state_dict(self) -> dict:
        return {
            "mode": self.mode,
            "reduction": self.reduction,
            "best": self.best,
            "num_bad": self.num_bad,
            "cooldown_left": self.cooldown_left,
            "observations": self.observations,
        }

    def load_state_dict(self, state: dict) -> None:
        if state["mode"] != self.mode:
            raise ValueError(
                f"plateau state was saved in mode {state['mode']!r}, the schedule is in mode "
                f"{self.mode!r} (schedule.mode / schedule.monitor changed?)"
            )
        self.reduction = float(state["reduction"])
        self.best = float(state["best"])
        self.num_bad = int(state["num_bad"])
        self.cooldown_left = int(state["cooldown_left"])
        self.observations = int(state["observations"])
