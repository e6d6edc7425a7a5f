"""Rectangular validation: batches of images with similar aspect ratios, each letterboxed to
the smallest stride-aligned rectangle that holds every image of its batch.

Every image keeps the scale of the square letterbox (long side ``imgsz``, ratio
``imgsz / max(h0, w0)``), so predictions are made at the same resolution as with square
validation; only the padding shrinks. A 640x512 image at imgsz 416 is resized to 416x333 and
padded to 416x352 instead of 416x416 (at imgsz 640: 640x512, no padding at all).

Use: ``batches = enable_rect(val_set, batch_size, stride)`` sets each image's target shape on
the dataset and returns the batches to pass to ``build_dataloader(..., batches=batches)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["fitted_size", "rect_batches", "enable_rect"]


def fitted_size(h0: int, w0: int, imgsz: int) -> tuple[int, int]:
    """(h, w) of an (h0, w0) image resized so its long side is ``imgsz`` — the same rounding
    as :func:`~detforge.data.augment.core.resize_long_side`."""
    r = imgsz / max(h0, w0)
    return max(1, round(h0 * r)), max(1, round(w0 * r))


def rect_batches(
    shapes: Sequence[tuple[int, int]], batch_size: int, imgsz: int, stride: int = 32
) -> tuple[list[list[int]], list[tuple[int, int]]]:
    """Group images by aspect ratio and give each batch a shared canvas.

    shapes: (h0, w0) of every image. Images are sorted by h0 / w0 (ties by index) and cut into
    consecutive batches of ``batch_size``. A batch's canvas (H, W) is, per side, the largest
    fitted size of its images rounded up to a multiple of ``stride``; as ``imgsz`` is a
    multiple of ``stride``, no side exceeds ``imgsz`` and no image is cropped.

    Returns (batches: lists of image indices, target (H, W) of every image by index).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if stride < 1 or imgsz % stride:
        raise ValueError(f"imgsz {imgsz} must be a multiple of the stride {stride}")
    fitted = np.array([fitted_size(h, w, imgsz) for h, w in shapes], np.int64).reshape(-1, 2)
    aspect = np.array([h / w for h, w in shapes], np.float64)
    order = np.argsort(aspect, kind="stable")
    batches: list[list[int]] = []
    targets: list[tuple[int, int]] = [(0, 0)] * len(shapes)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        h, w = (math.ceil(int(s) / stride) * stride for s in fitted[idx].max(axis=0))
        batches.append(idx.tolist())
        for i in idx.tolist():
            targets[i] = (h, w)
    return batches, targets


def enable_rect(dataset: Any, batch_size: int, stride: int = 32) -> list[list[int]]:
    """Switch a validation ``YoloDataset`` to rectangular letterboxing; return its batches.

    dataset: needs ``shapes``, ``imgsz``, ``augment`` (must be False) and ``set_rect_shapes``.
    The returned batches go to ``build_dataloader(..., batches=...)``; images then arrive
    grouped by aspect ratio, not in index order (``image_ids`` still name them).
    """
    if dataset.augment:
        raise ValueError("rectangular batches are for validation datasets (augment=False)")
    batches, targets = rect_batches(dataset.shapes, batch_size, dataset.imgsz, stride)
    dataset.set_rect_shapes(targets)
    return batches
