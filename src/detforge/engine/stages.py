"""Progressive resizing (``train.stages``) and multi-scale batches (``augment.multi_scale``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..config.stages import Stage, plan_stages

__all__ = ["Stage", "plan_stages", "StagePlan", "random_batch_size", "resize_batch"]


class StagePlan:
    """Which stage an epoch is in, and where the learning-rate schedule stands.

    The schedule is defined on a uniform grid of ``steps_per_epoch`` virtual steps per epoch
    (those of the first stage); an optimizer step at fraction f of epoch e is virtual step
    ``round((e + f) * steps_per_epoch)``, so the curve runs continuously across stages whose
    batch sizes differ. Without stages the virtual step is the real optimizer step.
    """

    def __init__(self, stages: list[Stage], steps: Sequence[int]):
        self.stages, self.steps = stages, list(steps)  # optimizer steps per epoch, per stage
        self.steps_per_epoch = self.steps[0]

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


def random_batch_size(imgsz: int, bounds: Sequence[float], stride: int, rng) -> int:
    """A multiple of ``stride`` drawn uniformly within [bounds[0], bounds[1]] x imgsz."""
    lo = max(stride, math.ceil(bounds[0] * imgsz / stride) * stride)
    hi = max(lo, math.floor(bounds[1] * imgsz / stride) * stride)
    return int(rng.integers(lo // stride, hi // stride + 1)) * stride


def resize_batch(x: Tensor, targets: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """(B, 3, S, S) images and (M, 6) [b, cls, x1, y1, x2, y2] targets rescaled to ``size``."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x, targets
    scale = torch.tensor(
        [1, 1, size / x.shape[-1], size / x.shape[-2], size / x.shape[-1], size / x.shape[-2]],
        dtype=targets.dtype, device=targets.device,
    )  # fmt: skip
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.contiguous(memory_format=torch.channels_last), targets * scale


def multi_scale_rng(seed: int, epoch: int, batch_index: int) -> np.random.Generator:
    """The batch size is a function of (seed, epoch, batch): resumed runs draw the same sizes."""
    return np.random.default_rng([seed, 7919, epoch, batch_index])
