"""The run plan: stages, optimizer steps per epoch, the schedule's length and the epoch where
close_mosaic starts, computed in one place.

The trainer, ``detforge schedule`` and ``detforge lr-find`` all take these numbers from
:func:`plan_run`, so the plotted curve is the one training follows. A run with ``train.time``
is re-planned to its fitted epoch count (``plan_run(..., epochs=N)``, see engine/budget.py):
the run keeps its shape, compressed. ``augment.close_mosaic`` and the stages' epochs are
scaled by ``N / train.epochs`` (rounded to whole epochs; every stage keeps at least one epoch
while the run has room for it, later stages are dropped when it has not).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..config import ConfigError, RunConfig
from ..config.stages import Stage, plan_stages
from ..data.order import train_batches
from .optim import accumulation_steps

__all__ = ["RunPlan", "plan_run", "scale_stages", "scaled_epochs"]


@dataclass
class RunPlan:
    """Which stage an epoch is in, its optimizer steps, and where the lr schedule stands.

    The schedule is defined on a uniform grid of ``steps_per_epoch`` virtual steps per epoch
    (those of the first stage); an optimizer step at fraction f of epoch e is virtual step
    ``round((e + f) * steps_per_epoch)``, so the curve runs continuously across stages whose
    batch sizes differ. Without stages the virtual step is the real optimizer step.
    """

    stages: list[Stage]
    steps: Sequence[int]  # optimizer steps per epoch, per stage
    accumulate: int  # batches per optimizer step
    epochs: int
    mosaic_until: int = 0  # mosaic and mixup only in epochs before this one (close_mosaic)

    @property
    def steps_per_epoch(self) -> int:
        return self.steps[0]

    @property
    def schedule_steps(self) -> int:
        """Length of the schedule in (virtual) optimizer steps."""
        return self.epochs * self.steps_per_epoch

    def stage(self, epoch: int) -> Stage:
        for st in self.stages:
            if epoch < st.first_epoch + st.epochs:
                return st
        return self.stages[-1]

    def index(self, epoch: int) -> int:
        return self.stages.index(self.stage(epoch))

    def schedule_step(self, epoch: int, step_in_epoch: int) -> int:
        spe = self.steps[self.index(epoch)]
        if spe == self.steps_per_epoch:
            return epoch * spe + step_in_epoch
        return round((epoch + step_in_epoch / spe) * self.steps_per_epoch)

    def describe(self) -> str:
        """One line per stage: its epochs, size, batch and optimizer steps per epoch."""
        return "\n".join(
            f"epochs {st.first_epoch + 1}-{st.first_epoch + st.epochs}: {st.imgsz} px, batch "
            f"{st.batch}, {n} optimizer steps per epoch (accumulate {self.accumulate})"
            for st, n in zip(self.stages, self.steps, strict=True)
        )


def scale_stages(stages: Sequence[Stage], epochs: int) -> list[Stage]:
    """``stages`` (laid out over their own total) compressed or stretched to ``epochs``: each
    stage ends at its share of the run, rounded, and keeps at least one epoch; stages that no
    longer fit (fewer epochs than stages) are dropped from the end."""
    total = sum(st.epochs for st in stages)
    if total == epochs:
        return list(stages)
    if epochs < len(stages):
        return [Stage(i, 1, st.imgsz, st.batch) for i, st in enumerate(stages[:epochs])]
    out, first, cum = [], 0, 0
    for i, st in enumerate(stages):
        cum += st.epochs
        later = len(stages) - i - 1  # each later stage keeps one epoch at least
        end = min(max(math.floor(cum * epochs / total + 0.5), first + 1), epochs - later)
        out.append(Stage(first, end - first, st.imgsz, st.batch))
        first = end
    return out


def scaled_epochs(value: float, epochs: int, configured: int) -> float:
    """An epoch count ``value`` set for a ``configured``-epoch run, scaled to ``epochs``."""
    return value if epochs == configured else value * epochs / configured


def plan_run(
    cfg: RunConfig, train_images: int, world_size: int = 1, epochs: int | None = None
) -> RunPlan:
    """The plan for ``train_images`` training images shared by ``world_size`` processes, over
    ``epochs`` (default ``train.epochs``; a ``train.time`` run passes its fitted count)."""
    t = cfg.train
    if t.batch == "auto":
        raise ConfigError(
            "train.batch: auto is chosen when training starts (engine/auto_batch.py); give a "
            "number to plan a run without training"
        )
    epochs = t.epochs if epochs is None else epochs
    stages = scale_stages(plan_stages(t.stages, t.epochs, t.imgsz, t.batch), epochs)
    accumulate = accumulation_steps(t, world_size)
    per_rank = math.ceil(train_images / world_size)
    steps = [math.ceil(train_batches(per_rank, st.batch) / accumulate) for st in stages]
    close = math.floor(scaled_epochs(cfg.augment.close_mosaic, epochs, t.epochs) + 0.5)
    return RunPlan(stages, steps, accumulate, epochs, max(0, epochs - close))
