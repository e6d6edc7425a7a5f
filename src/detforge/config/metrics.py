"""Names of validation values that fitness, early stopping and schedules may use."""

from __future__ import annotations

from collections.abc import Mapping

from .fields import ConfigError, suggest

__all__ = [
    "LOSS_KEYS", "METRIC_KEYS", "CLASSIFY_METRIC_KEYS", "CLASSIFY_LOSS_KEYS", "task_keys",
    "check_fitness_weights", "check_monitor", "resolve_mode",
]  # fmt: skip

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


# task=classify: eval/classify_validator.py ClassifyValResult.metrics
CLASSIFY_METRIC_KEYS = ("top1", "top5", "balanced_accuracy", "macro_precision", "macro_f1")


def check_fitness_weights(
    weights: Mapping[str, float], key: str = "fitness", task: str = "detect"
) -> None:
    """Reject unknown metric names (of ``task``) and an all-zero weighting."""
    metric_keys, loss_keys = task_keys(task)
    if not weights:
        example = f"{{{metric_keys[0]}: 1.0}}"
        raise ConfigError(f"{key}: needs at least one metric weight, e.g. {example}")
    for name, w in weights.items():
        if name not in metric_keys:
            other = METRIC_KEYS if task == "classify" else CLASSIFY_METRIC_KEYS
            hint = f" (a task={'detect' if task == 'classify' else 'classify'} metric)"
            raise ConfigError(
                f"{key}: unknown metric '{name}'{hint if name in other else ''}"
                f"{suggest(name, metric_keys)}; choose from {', '.join(metric_keys)}"
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


# task=classify: the cross-entropy term, and val/loss its total
CLASSIFY_LOSS_KEYS = ("val/loss", "val/cls")


def task_keys(task: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The metric names and validation loss names of ``task`` (detect or classify)."""
    if task == "classify":
        return CLASSIFY_METRIC_KEYS, CLASSIFY_LOSS_KEYS
    return METRIC_KEYS, LOSS_KEYS


def check_monitor(name: str, key: str, task: str = "detect") -> None:
    """A value early stopping or the plateau schedule can watch (in a ``task`` run)."""
    metric_keys, loss_keys = task_keys(task)
    allowed = ("fitness", *loss_keys, *metric_keys)
    bare = name.removeprefix("metrics/")
    if name not in allowed and bare not in metric_keys:
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
