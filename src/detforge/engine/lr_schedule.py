"""The learning-rate schedule object: warmup, then a decay curve, at an explicit optimizer step.

The rules (units, warmup, bias warmup, group multipliers) are written down in
:mod:`detforge.engine.schedule`, which also builds these objects from the configuration.
"""

from __future__ import annotations

from torch.optim import Optimizer

from .schedule_curves import DecayCurve
from .schedule_plateau import PlateauTracker

__all__ = ["LRSchedule", "is_bias_group"]


def is_bias_group(group: dict) -> bool:
    """Bias groups (``bias``, ``backbone.*/bias``, ...) get the bias warmup."""
    return str(group.get("name", "")).endswith("bias")


class LRSchedule:
    """Warmup followed by a decay curve, evaluated at an explicit optimizer step.

    Build it with :func:`build_lr_schedule`. Everything is a pure function of ``step`` except the
    plateau reduction, which :meth:`observe` changes and :meth:`state_dict` saves.
    """

    def __init__(
        self,
        curve: DecayCurve,
        *,
        interval: str,
        epochs: int,
        steps_per_epoch: int,
        warmup_units: int = 0,
        warmup_method: str = "linear",
        warmup_start_factor: float = 0.0,
        warmup_bias_factor: float | None = None,
        momentum: float | None = None,
        warmup_momentum: float | None = None,
        plateau: PlateauTracker | None = None,
        monitor: str | None = None,
    ) -> None:
        self.curve = curve
        self.interval = interval
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch
        self.steps_per_unit = steps_per_epoch if interval == "epoch" else 1
        self.warmup_units = warmup_units
        self.warmup_method = warmup_method
        self.warmup_start_factor = warmup_start_factor
        self.warmup_bias_factor = warmup_bias_factor
        self.momentum = momentum
        # warmup ramps momentum up to its value, never down from above it
        self.warmup_momentum = (
            momentum
            if warmup_momentum is None or momentum is None
            else min(warmup_momentum, momentum)
        )
        self.plateau = plateau
        self.monitor = monitor if plateau is not None else None

    # ------------------------------------------------------------------ facts
    @property
    def name(self) -> str:
        return self.curve.name

    @property
    def total_steps(self) -> int:
        """Optimizer steps in the whole run (``epochs * steps_per_epoch``)."""
        return self.epochs * self.steps_per_epoch

    @property
    def warmup_steps(self) -> int:
        """Optimizer steps of warmup (whole epochs of steps with ``interval: epoch``)."""
        return self.warmup_units * self.steps_per_unit

    @property
    def needs_metric(self) -> bool:
        """True for ``plateau``: feed :meth:`observe` after every validation."""
        return self.plateau is not None

    @property
    def mode(self) -> str | None:
        """``min`` or ``max`` for ``plateau`` (``auto`` resolved), else None."""
        return self.plateau.mode if self.plateau is not None else None

    def describe(self) -> str:
        """One line for the training log."""
        unit = "step" if self.interval == "step" else "epoch"
        warm = (
            f"{self.warmup_method} warmup of {self.warmup_steps} steps from "
            f"{self.warmup_start_factor:g}x, then "
            if self.warmup_units
            else ""
        )
        extra = f" on {self.monitor} ({self.mode})" if self.plateau is not None else ""
        return f"{warm}{self.name}{extra}, updated every {unit}, {self.total_steps} steps in all"

    # ------------------------------------------------------------------ values
    def _unit(self, step: int) -> int:
        return max(int(step), 0) // self.steps_per_unit

    def _scheduled(self, unit: int) -> float:
        """Multiplier of the decay part at ``unit`` (its start value during warmup)."""
        factor = self.curve(max(unit - self.warmup_units, 0))
        return factor * self.plateau.reduction if self.plateau is not None else factor

    def _warm_fraction(self, unit: int) -> float:
        return unit / self.warmup_units

    def lr_factor(self, step: int) -> float:
        """Multiplier of a (non-bias) group's ``initial_lr`` at ``step``, warmup included."""
        unit = self._unit(step)
        scheduled = self._scheduled(unit)
        if unit >= self.warmup_units:
            return scheduled
        f = self.warmup_start_factor
        if self.warmup_method == "constant":
            return scheduled * f
        return scheduled * (f + (1.0 - f) * self._warm_fraction(unit))

    def lr(self, step: int, base_lr: float, is_bias: bool = False) -> float:
        """Learning rate at ``step`` of a group whose ``initial_lr`` is ``base_lr``."""
        unit = self._unit(step)
        if is_bias and self.warmup_bias_factor is not None and unit < self.warmup_units:
            start, target = self.warmup_bias_factor * base_lr, base_lr * self._scheduled(unit)
            return start + (target - start) * self._warm_fraction(unit)
        return base_lr * self.lr_factor(step)

    def momentum_at(self, step: int) -> float | None:
        """Momentum (or beta1) at ``step``; None when the schedule leaves momentum alone."""
        if self.momentum is None:
            return None
        unit = self._unit(step)
        if unit >= self.warmup_units:
            return self.momentum
        start = self.warmup_momentum
        return start + (self.momentum - start) * self._warm_fraction(unit)

    def apply(self, optimizer: Optimizer, step: int) -> None:
        """Set every group's lr and momentum for ``step``.

        A group without ``initial_lr`` gets its current lr recorded as ``initial_lr`` first (the
        PyTorch scheduler convention), so plain optimizers work too.
        """
        momentum = self.momentum_at(step)
        for group in optimizer.param_groups:
            base = group.setdefault("initial_lr", group["lr"])
            group["lr"] = self.lr(step, base, is_bias_group(group))
            if momentum is None:
                continue
            if "betas" in group:
                group["betas"] = (momentum, group["betas"][1])
            elif "momentum" in group:
                group["momentum"] = momentum

    # ------------------------------------------------------------------ state
    def observe(self, value: float, step: int) -> bool:
        """Feed one validation result (plateau only; a no-op for the others).

        ``step``: optimizer steps taken so far. Results seen during warmup are ignored, since
        the plateau schedule starts after it. Returns True when this result cut the lr.
        """
        if self.plateau is None or int(step) < self.warmup_steps:
            return False
        return self.plateau.update(value)

    def state_dict(self) -> dict:
        """What a checkpoint must keep: the name, and the plateau state (None otherwise)."""
        return {
            "name": self.name,
            "plateau": self.plateau.state_dict() if self.plateau is not None else None,
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("name") != self.name:
            raise ValueError(
                f"schedule.name: the checkpoint was saved with schedule {state.get('name')!r}, "
                f"the configuration asks for {self.name!r}"
            )
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])
