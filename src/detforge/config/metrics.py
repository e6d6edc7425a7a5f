"""Names of validation values that fitness, early stopping and schedules may use."""

from __future__ import annotations

from collections.abc import Mapping

from .fields import ConfigError, suggest

__all__ = ["LOSS_KEYS", "METRIC_KEYS", "check_fitness_weights", "check_monitor", "resolve_mode"]

# Validation metrics a fitness may weigh: the 12 COCO stats, then P/R/F1 at the confidence
# of best mean F1 and the mean IoU of matched detections (eval/metrics.py).
METRIC_KEYS = (
    "map50_95",
    "map50",
    "map75",
    "map_small",
    "map_medium",
    "map_large",
    "ar1",
    "ar10",
    "ar100",
    "ar_small",
    "ar_medium",
    "ar_large",
    "precision",
    "recall",
    "f1",
    "mean_iou",
)


def check_fitness_weights(weights: Mapping[str, float], key: str = "fitness") -> None:
    """Reject unknown metric names and an all-zero weighting."""
    if not weights:
        raise ConfigError(f"{key}: needs at least one metric weight, e.g. {{map50_95: 1.0}}")
    for name, w in weights.items():
        if name not in METRIC_KEYS:
            raise ConfigError(
                f"{key}: unknown metric '{name}'{suggest(name, METRIC_KEYS)}; "
                f"choose from {', '.join(METRIC_KEYS)}"
            )
        if not isinstance(w, int | float) or isinstance(w, bool):
            raise ConfigError(f"{key}.{name}: expected a number, got {w!r}")
    if all(w == 0 for w in weights.values()):
        raise ConfigError(f"{key}: all weights are zero")


# Validation losses (total and per term) that early stopping and the plateau schedule may watch.
LOSS_KEYS = (
    "val/loss", "val/box", "val/cls", "val/dfl",  # anchor-free models
    "val/coord", "val/conf", "val/class",  # anchor models
)  # fmt: skip


def check_monitor(name: str, key: str) -> None:
    """A value early stopping or the plateau schedule can watch."""
    allowed = ("fitness", *LOSS_KEYS, *METRIC_KEYS)
    bare = name.removeprefix("metrics/")
    if name not in allowed and bare not in METRIC_KEYS:
        raise ConfigError(
            f"{key}: cannot monitor '{name}'{suggest(name, allowed)}; choose from "
            f"{', '.join(allowed)}"
        )


def resolve_mode(monitor: str, mode: str) -> str:
    """``auto`` means ``min`` for validation losses (``val/loss`` and the ``val/<term>`` loss
    terms, or anything named like a loss) and ``max`` for metrics and fitness."""
    if mode != "auto":
        return mode
    return "min" if monitor.startswith("val/") or "loss" in monitor.lower() else "max"
