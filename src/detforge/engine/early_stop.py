"""Early stopping on any validation value, with state saved in checkpoints."""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..config.fields import ConfigError
from ..config.metrics import resolve_mode

__all__ = ["EarlyStopping", "monitored_value"]


def monitored_value(monitor: str, values: Mapping[str, float], key: str) -> float:
    """Look ``monitor`` up in a validation row: 'fitness', 'val/loss' (the row's own, or the
    sum of the val loss terms), 'val/<term>', or a metric name (``map50_95`` or
    ``metrics/map50_95``)."""
    if monitor == "val/loss" and "val/loss" in values:
        return float(values["val/loss"])  # a task that writes its total (classification)
    if monitor == "val/loss":
        terms = [v for k, v in values.items() if k.startswith("val/")]
        if not terms:
            raise ConfigError(f"{key}: 'val/loss' needs validation losses, none were computed")
        return float(sum(terms))
    for name in (monitor, f"metrics/{monitor}"):
        if name in values:
            return float(values[name])
    known = sorted(k.removeprefix("metrics/") for k in values if k != "epoch")
    raise ConfigError(f"{key}: '{monitor}' is not a validation value; known: {', '.join(known)}")


class EarlyStopping:
    """Stop after ``patience`` validations without an improvement larger than ``min_delta``."""

    def __init__(
        self,
        monitor: str = "fitness",
        mode: str = "auto",
        patience: int | None = None,
        min_delta: float = 0.0,
    ):
        self.monitor, self.mode = monitor, resolve_mode(monitor, mode)
        self.patience, self.min_delta = patience, min_delta
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = 0
        self.bad = 0
        self.reason = ""

    def step(self, value: float, epoch: int) -> bool:
        """Record one validation; True when training should stop."""
        improved = (
            value < self.best - self.min_delta
            if self.mode == "min"
            else value > self.best + self.min_delta
        )
        if improved:
            self.best, self.best_epoch, self.bad = value, epoch, 0
        else:
            self.bad += 1
        if self.patience is not None and self.bad >= self.patience:
            self.reason = (
                f"early stopping: {self.monitor} has not improved by more than {self.min_delta} "
                f"for {self.bad} validations (best {self.best:.5g} at epoch {self.best_epoch})"
            )
            return True
        return False

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad": self.bad}

    def load_state_dict(self, state: Mapping) -> None:
        self.best, self.best_epoch, self.bad = state["best"], state["best_epoch"], state["bad"]
