"""The decay curves that follow the warmup, as pure functions of the time since warmup ended.

Every curve returns a multiplier of a parameter group's ``initial_lr``. Time ``t`` and the curve
length are counted in *units*: optimizer steps (``interval: step``) or epochs (``interval:
epoch``); ``units_per_epoch`` converts the epoch-valued settings (``step_size``, ``milestones``,
the per-epoch ``gamma`` of ``exponential``) into units, which is what makes ``interval: step``
evaluate them at fractional epoch positions.

The formulas follow the documented definitions of the PyTorch schedulers of the same name, so
that a ``Main`` scheduler stepped once per unit gives the same values (tests/engine/
test_schedule.py checks this to 1e-9):

- ``cosine``:      final + (1 - final) * (1 + cos(pi * t / T)) / 2   (CosineAnnealingLR, T_max=T)
- ``linear``:      1 + (final - 1) * t / T                           (LinearLR, total_iters=T)
- ``polynomial``:  final + (1 - final) * (1 - t / T) ** power        (PolynomialLR when final=0)
- ``step``:        gamma ** floor(t / step_size)                     (StepLR)
- ``multistep``:   gamma ** (number of milestones <= t)              (MultiStepLR)
- ``exponential``: gamma ** t                                        (ExponentialLR)
- ``onecycle``:    1/div_factor up to 1 at t = pct_start*T - 1, then down to
                   1/(div_factor*final_div_factor) at t = T - 1      (OneCycleLR, two phases)
- ``constant`` and ``plateau``: 1 (plateau's cuts are state, applied by the schedule).

``t`` beyond the curve is clamped to its end, so the final value holds after training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DecayCurve", "anneal"]

# Boundaries given in epochs become fractional units (e.g. 0.3 epoch x 10 steps is
# 3.0000000000000004 steps); this slack makes a boundary count as reached at the step the
# user meant instead of one step later.
_BOUNDARY_SLACK = 1e-9


def anneal(start: float, end: float, pct: float, shape: str) -> float:
    """Value between ``start`` (pct 0) and ``end`` (pct 1): half-cosine or straight line."""
    if shape == "cos":
        return end + (start - end) / 2.0 * (1.0 + math.cos(math.pi * pct))
    return start + (end - start) * pct


@dataclass(frozen=True)
class DecayCurve:
    """One decay curve over ``length`` units (see the module docstring for the formulas).

    ``final`` is the end multiplier of cosine / linear / polynomial (``lrf``, or ``min_lr /
    lr0``); ``step_size`` and ``milestones`` are in epochs, ``gamma`` is per epoch.
    """

    name: str
    length: float
    units_per_epoch: float = 1.0
    final: float = 0.01
    gamma: float = 0.1
    step_size: float = 30.0
    milestones: tuple[float, ...] = ()
    power: float = 1.0
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    anneal_shape: str = "cos"

    def __call__(self, t: float) -> float:
        """Multiplier of a group's initial lr at ``t`` units after the end of warmup."""
        t = max(float(t), 0.0)
        name = self.name
        if name in ("constant", "plateau"):
            return 1.0
        if name == "onecycle":
            return self._onecycle(t)
        if name == "step":
            boundary = self.step_size * self.units_per_epoch
            return self.gamma ** math.floor(t / boundary + _BOUNDARY_SLACK)
        if name == "multistep":
            reached = sum(
                1 for m in self.milestones if t / (m * self.units_per_epoch) >= 1 - _BOUNDARY_SLACK
            )
            return self.gamma**reached
        if name == "exponential":
            return self.gamma ** (t / self.units_per_epoch)
        # the remaining curves end at ``final`` after ``length`` units and stay there; a curve of
        # no length (warmup as long as the run) still starts at 1
        x = min(t / self.length, 1.0) if self.length > 0 else float(t > 0)
        if name == "cosine":
            return self.final + (1.0 - self.final) * (1.0 + math.cos(math.pi * x)) / 2.0
        if name == "linear":
            return 1.0 + (self.final - 1.0) * x
        if name == "polynomial":
            return self.final + (1.0 - self.final) * (1.0 - x) ** self.power
        raise ValueError(f"schedule.name: unknown schedule {name!r}")

    def _onecycle(self, t: float) -> float:
        # Two phases as in the 1cycle policy: the peak is reached at unit pct_start*T - 1 and the
        # last unit (T - 1) ends at the minimum; a phase of zero length is skipped.
        start = 1.0 / self.div_factor
        low = start / self.final_div_factor
        peak_at = self.pct_start * self.length - 1.0
        if t < peak_at:
            return anneal(start, 1.0, t / peak_at, self.anneal_shape)
        end_at = self.length - 1.0
        pct = min((t - peak_at) / (end_at - peak_at), 1.0) if end_at > peak_at else 1.0
        return anneal(1.0, low, pct, self.anneal_shape)
