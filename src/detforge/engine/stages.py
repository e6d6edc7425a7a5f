"""Progressive resizing (``train.stages``) and multi-scale batches (``augment.multi_scale``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..config.stages import Stage, plan_stages

__all__ = [
    "Stage", "plan_stages", "random_batch_size", "resize_batch", "multi_scale_rng", "batch_inputs",
]  # fmt: skip


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


def batch_inputs(
    batch: dict, device: torch.device, cfg, epoch: int, index: int, stride: int
) -> tuple[Tensor, Tensor]:
    """Images (B, 3, H, W) as floats in [0, 1] (channels-last) and targets (M, 6) on
    ``device``; with augment.multi_scale, resized to the size drawn for (seed, epoch, batch)."""
    x = batch["img"].to(device, non_blocking=True).float().div_(255)
    x = x.contiguous(memory_format=torch.channels_last)
    targets = batch["targets"].to(device)
    if cfg.augment.multi_scale:
        rng = multi_scale_rng(cfg.train.seed, epoch, index)
        size = random_batch_size(x.shape[-1], cfg.augment.multi_scale, stride, rng)
        x, targets = resize_batch(x, targets, size)
    return x, targets
