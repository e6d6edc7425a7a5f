"""Cheap trials: ``tune.epochs``, ``tune.fraction`` and ``tune.imgsz`` are the settings every
trial runs with instead of the study's own (``best.yaml`` and the ``final=true`` run keep the
study's epochs, whole training set and image size)."""

from __future__ import annotations

from typing import Any

from ..config import ConfigError
from .space import Space

__all__ = ["STRIDE", "low_fidelity"]

STRIDE = 32  # the largest stride of every model: train.imgsz must be a multiple of it
_KEYS = {"train.epochs": "tune.epochs", "data.fraction": "tune.fraction",
         "train.imgsz": "tune.imgsz"}  # fmt: skip


def low_fidelity(
    epochs: int | None, fraction: float | None, imgsz: int | None, trial_epochs: int,
    space: Space,
) -> dict[str, Any]:  # fmt: skip
    """``{setting: value}`` of every trial for ``tune.epochs`` (``trial_epochs``: it, or the
    study's epochs), ``tune.fraction`` and ``tune.imgsz`` (None: the study's); bad values and a
    space over one of the keys the study sets per trial are errors naming the key."""
    if epochs is not None and epochs < 1:
        raise ConfigError(f"tune.epochs: {epochs} must be a positive integer")
    if fraction is not None and not 0 < fraction <= 1:
        raise ConfigError(f"tune.fraction: {fraction} must be in (0, 1]")
    if imgsz is not None and (imgsz < STRIDE or imgsz % STRIDE):
        near = max(STRIDE, round(imgsz / STRIDE) * STRIDE)
        raise ConfigError(
            f"tune.imgsz: {imgsz} is not a positive multiple of the model stride {STRIDE} "
            f"(nearest: {near})"
        )
    out: dict[str, Any] = {"train.epochs": trial_epochs}
    if fraction is not None:
        out["data.fraction"] = fraction
    if imgsz is not None:
        out["train.imgsz"] = imgsz
    # the study sets these per trial: a space over them would be overridden without a word
    keys = {p.key for p in space.params}
    for key in (*out, "train.project", "train.name", "train.exist_ok"):
        if key in keys:
            how = f" ({_KEYS[key]}, or the settings' value)" if key in _KEYS else ""
            raise ConfigError(f"space key {key}: the study sets it for every trial{how}")
    return out
