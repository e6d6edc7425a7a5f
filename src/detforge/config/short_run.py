"""Defaults made for long runs, fitted to short ones (or a warning where the user set them).

``schedule.warmup_epochs`` (3) and ``augment.close_mosaic`` (10) suit runs of 15 epochs and more.
In a 2-epoch run they keep the lr below ``optim.lr0`` for the whole run and switch mosaic off
from the first epoch, and every metric stayed at 0. Only values that come from the defaults or
the demo preset are changed, and the change is logged with the new values; a value the user
set (argument, environment, config file, recipe) is kept and warned about; a checkpoint's saved
settings are left alone (they already are what that run used).

Rules (chosen so that every run of 15 epochs or more, the demo included, is unchanged):

- warmup at most a fifth of the run: ``warmup_epochs = min(warmup_epochs, epochs / 5)``, whole
  epochs with ``schedule.interval=epoch``;
- mosaic on for at least the first third of the run (task=detect):
  ``close_mosaic = min(close_mosaic, epochs * 2 // 3)``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection
from typing import Any

__all__ = ["fit_short_run"]

log = logging.getLogger("detforge")

_WARMUP_KEYS = ("schedule.warmup_epochs", "schedule.warmup_iters", "schedule.warmup_fraction")


def fit_short_run(
    values: dict[str, Any],
    user_keys: Collection[str],
    saved_keys: Collection[str],
    notes: list[tuple[int, str]] | None = None,
) -> list[tuple[int, str]]:
    """Change ``values`` (``{"section.key": value}``, every setting) in place for a short run.

    Returns ``(level, message)`` lines: changes at INFO, kept user values at WARNING. They are
    logged, or appended to ``notes`` when given (for a caller that logs them after its own
    first line)."""
    epochs = values["train.epochs"]
    changed, warned = [], []

    warm = values["schedule.warmup_epochs"]
    warm_set = [k for k in _WARMUP_KEYS if values[k] is not None and k in user_keys]
    if not any(k in user_keys or k in saved_keys for k in _WARMUP_KEYS):
        cap = epochs / 5 if values["schedule.interval"] == "step" else math.floor(epochs / 5)
        if warm > cap:
            values["schedule.warmup_epochs"] = float(cap)
            changed.append(f"schedule.warmup_epochs {warm:g} -> {cap:g}")
    elif warm_set == ["schedule.warmup_epochs"] and warm >= epochs:
        warned.append(
            f"schedule.warmup_epochs={warm:g} is not shorter than the {epochs}-epoch run: the "
            f"learning rate never reaches optim.lr0; set schedule.warmup_epochs below {epochs}"
        )

    close = values["augment.close_mosaic"]
    if values.get("train.task") == "classify":
        pass  # no mosaic in classification (augment.close_mosaic is a detect-only setting)
    elif "augment.close_mosaic" not in user_keys and "augment.close_mosaic" not in saved_keys:
        cap = epochs * 2 // 3
        if close > cap:
            values["augment.close_mosaic"] = cap
            changed.append(f"augment.close_mosaic {close} -> {cap}")
    elif "augment.close_mosaic" in user_keys and close >= epochs and values["augment.mosaic"] > 0:
        warned.append(
            f"augment.close_mosaic={close} turns mosaic off for the whole {epochs}-epoch run; "
            f"set augment.close_mosaic below {epochs} to train with mosaic"
        )

    lines = [(logging.WARNING, line) for line in warned]
    if changed:
        line = (
            f"short run of {epochs} epochs: defaults fitted to it: {', '.join(changed)} "
            "(set these keys to choose other values)"
        )
        lines.insert(0, (logging.INFO, line))
    if notes is None:
        for level, line in lines:
            log.log(level, line)
    else:
        notes.extend(lines)
    return lines
