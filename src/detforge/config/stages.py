"""Validation and layout of ``train.stages`` (progressive resizing)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .fields import ConfigError, suggest

__all__ = ["Stage", "plan_stages"]

_STAGE_KEYS = ("epochs", "imgsz", "batch")


@dataclass(frozen=True)
class Stage:
    first_epoch: int  # 0-based
    epochs: int
    imgsz: int
    batch: int


def plan_stages(
    stages: Sequence[Mapping], epochs: int, imgsz: int, batch: int, stride: int = 32
) -> list[Stage]:
    """Validate ``train.stages`` and lay them out; without stages, one stage of the whole run."""
    if not stages:
        return [Stage(0, epochs, imgsz, batch)]
    out, first = [], 0
    for i, st in enumerate(stages):
        key = f"train.stages[{i}]"
        if not isinstance(st, Mapping):
            raise ConfigError(f"{key}: expected a mapping like {{epochs: 10, imgsz: 320}}")
        for k in st:
            if k not in _STAGE_KEYS:
                raise ConfigError(f"{key}: unknown key '{k}'{suggest(str(k), _STAGE_KEYS)}")
        if "epochs" not in st:
            raise ConfigError(f"{key}: missing 'epochs'")
        n, size, b = st["epochs"], st.get("imgsz", imgsz), st.get("batch", batch)
        for name, v in (("epochs", n), ("imgsz", size), ("batch", b)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{key}.{name}: expected a positive whole number, got {v!r}")
        if size % stride:
            raise ConfigError(f"{key}.imgsz: {size} is not a multiple of {stride}")
        out.append(Stage(first, n, size, b))
        first += n
    if first != epochs:
        raise ConfigError(f"train.stages: the stages have {first} epochs, train.epochs is {epochs}")
    return out
