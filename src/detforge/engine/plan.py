"""The run plan: stages, optimizer steps per epoch and the schedule's length, computed once.

The trainer, ``detforge schedule`` and ``detforge lr-find`` all take these numbers from
:func:`plan_run`, so the plotted curve is the one training follows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..config import RunConfig
from ..config.stages import Stage, plan_stages
from .optim import accumulation_steps

__all__ = ["RunPlan", "plan_run"]


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


def plan_run(cfg: RunConfig, train_images: int, world_size: int = 1) -> RunPlan:
    """The plan for ``train_images`` training images shared by ``world_size`` processes."""
    stages = plan_stages(cfg.train.stages, cfg.train.epochs, cfg.train.imgsz, cfg.train.batch)
    accumulate = accumulation_steps(cfg.train, world_size)
    per_rank = math.ceil(train_images / world_size)
    steps = [math.ceil(math.ceil(per_rank / st.batch) / accumulate) for st in stages]
    return RunPlan(stages, steps, accumulate, cfg.train.epochs)
