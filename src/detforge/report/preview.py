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

if TYPE_CHECKING:
    from detforge.data.dataset import YoloDataset

__all__ = ["augment_preview", "draw_boxes"]

# BGR colours that stay apart from each other and from gray/black backgrounds
_COLOURS = [
    (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207),
    (10, 249, 72), (23, 204, 146), (134, 219, 61), (211, 188, 0), (209, 114, 255),
    (255, 194, 0), (147, 69, 52), (255, 115, 100), (236, 24, 0), (255, 56, 132),
    (133, 0, 82), (255, 56, 203), (200, 149, 255), (199, 55, 255), (0, 140, 255),
]  # fmt: skip
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _label(canvas: np.ndarray, text: str, x: int, y: int, colour: tuple[int, ...]) -> None:
    """Text on a filled box whose bottom-left corner is (x, y), kept inside the canvas."""
    (tw, th), base = cv2.getTextSize(text, _FONT, 0.4, 1)
    x = min(max(x, 0), max(canvas.shape[1] - tw - 2, 0))
    y = max(y, th + base + 1)
    cv2.rectangle(canvas, (x, y - th - base - 1), (x + tw + 2, y), colour, cv2.FILLED)
    luma = 0.114 * colour[0] + 0.587 * colour[1] + 0.299 * colour[2]
    ink = (0, 0, 0) if luma > 140 else (255, 255, 255)
    cv2.putText(canvas, text, (x + 1, y - base), _FONT, 0.4, ink, 1, cv2.LINE_AA)


def draw_boxes(
    img: np.ndarray, labels: np.ndarray, names: list[str], scale: float = 1.0
) -> np.ndarray:
    """RGB (H, W, 3) or gray (H, W) uint8 + labels (n, 5) [cls, x1, y1, x2, y2] -> a BGR copy
    resized by ``scale`` with boxes and class names drawn."""
    bgr = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR if img.ndim == 2 else cv2.COLOR_RGB2BGR)
    if scale != 1.0:
        h, w = bgr.shape[:2]
        bgr = cv2.resize(bgr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    for cls, *box in labels.tolist():
        c = int(cls)
        colour = _COLOURS[c % len(_COLOURS)]
        x1, y1, x2, y2 = (round(v * scale) for v in box)
        cv2.rectangle(bgr, (x1, y1), (x2 - 1, y2 - 1), colour, 1, cv2.LINE_AA)
        _label(bgr, names[c] if 0 <= c < len(names) else str(c), x1, y1, colour)
    return bgr


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
        tile = draw_boxes(img, sample["labels"], dataset.names, cell / max(img.shape[:2]))
        r, c = divmod(k, cols)
        y, x = gap + r * (cell + gap), gap + c * (cell + gap)
        grid[y : y + tile.shape[0], x : x + tile.shape[1]] = tile
        _label(grid, f"#{index}", x, y + cell, (40, 40, 40))
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), grid):
        raise OSError(f"{out}: cannot write the preview image")
    return out
