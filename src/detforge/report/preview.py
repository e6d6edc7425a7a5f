"""Augment preview: a grid of augmented training samples with their boxes and class names.

Drawn with OpenCV only (Hershey font: nothing to download). The images shown, and their
augmentation, are a pure function of (seed, epoch): run it again with the same arguments and the
PNG is the same; change ``epoch`` to see what ``close_mosaic`` leaves (epochs from
``mosaic_until_epoch`` on have no mosaic and no mixup).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .draw import class_color, draw_boxes, draw_label

if TYPE_CHECKING:
    from detforge.data.dataset import YoloDataset

__all__ = ["augment_preview", "draw_sample"]


def draw_sample(
    img: np.ndarray, labels: np.ndarray, names: list[str], scale: float = 1.0
) -> np.ndarray:
    """RGB (H, W, 3) or gray (H, W) uint8 + labels (n, 5) [cls, x1, y1, x2, y2] -> a BGR copy
    resized by ``scale`` with boxes and class names drawn."""
    rgb = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB) if img.ndim == 2 else img.copy()
    if scale != 1.0:
        h, w = rgb.shape[:2]
        rgb = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    cls = labels[:, 0].astype(int).tolist()
    text = [names[c] if 0 <= c < len(names) else str(c) for c in cls]
    draw_boxes(rgb, labels[:, 1:5] * scale, [class_color(c) for c in cls], text)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def augment_preview(
    dataset: YoloDataset,
    n: int = 16,
    out_png: str | os.PathLike[str] = "augment_preview.png",
    seed: int = 0,
    epoch: int = 0,
    cell: int | None = None,
) -> Path:
    """Write a grid of ``n`` augmented training samples of ``dataset`` to ``out_png``.

    Images are drawn by ``seed`` (without repeats while n <= len(dataset)) and augmented as in
    ``epoch`` with ``seed`` as the augmentation seed, through the dataset's own training chain
    (its ``aug`` settings, mosaic and mixup per ``mosaic_until_epoch``). cell: side of one grid
    cell in pixels (default: imgsz, at most 320). Each cell is captioned with the image index.
    Returns the path written.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    indices = rng.choice(len(dataset), size=n, replace=n > len(dataset))
    cell = cell or min(dataset.imgsz, 320)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    gap = 4
    grid = np.full((rows * (cell + gap) + gap, cols * (cell + gap) + gap, 3), 255, np.uint8)
    for k, index in enumerate(indices.tolist()):
        sample = dataset.augmented(index, epoch, seed=seed)
        img = sample["img"]
        tile = draw_sample(img, sample["labels"], dataset.names, cell / max(img.shape[:2]))
        r, c = divmod(k, cols)
        y, x = gap + r * (cell + gap), gap + c * (cell + gap)
        grid[y : y + tile.shape[0], x : x + tile.shape[1]] = tile
        draw_label(grid, f"#{index}", x, y + cell, (40, 40, 40))
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), grid):
        raise OSError(f"{out}: cannot write the preview image")
    return out
