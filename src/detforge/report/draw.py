"""Boxes drawn on images for galleries and reports (OpenCV, Hershey font: nothing to fetch).

Colours are RGB: ground truth green, true positives blue, false positives red.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["GT_COLOR", "TP_COLOR", "FP_COLOR", "draw_boxes", "fit_width", "write_image"]

GT_COLOR = (0, 200, 0)
TP_COLOR = (30, 90, 255)
FP_COLOR = (230, 20, 20)


def draw_boxes(
    img: np.ndarray,
    boxes: np.ndarray,
    color: tuple[int, int, int],
    labels: Sequence[str] | None = None,
    thickness: int = 1,
) -> np.ndarray:
    """Draw xyxy boxes (N, 4) in pixels of ``img`` (H, W, 3) RGB uint8, in place; returns img.

    Labels go above each box on a filled strip so they stay readable on any background.
    """
    import cv2

    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.35
    h, w = img.shape[:2]
    for i, b in enumerate(np.asarray(boxes, np.float64).reshape(-1, 4)):
        x1, y1 = int(round(max(0, b[0]))), int(round(max(0, b[1])))
        x2, y2 = int(round(min(w - 1, b[2]))), int(round(min(h - 1, b[3])))
        cv2.rectangle(img, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
        if labels is not None and labels[i]:
            (tw, th), base = cv2.getTextSize(labels[i], font, scale, 1)
            ty = y1 - 2 if y1 - th - base - 2 >= 0 else min(h - 1, y2 + th + 2)
            cv2.rectangle(img, (x1, ty - th - 1), (x1 + tw + 2, ty + base - 1), color, -1)
            cv2.putText(img, labels[i], (x1 + 1, ty - 1), font, scale, (255, 255, 255), 1,
                        cv2.LINE_AA)  # fmt: skip
    return img


def fit_width(
    img: np.ndarray, max_width: int = 640, min_width: int = 480
) -> tuple[np.ndarray, float]:
    """Resize an RGB image to a width within [min_width, max_width] (small images are enlarged
    so labels stay legible); returns (image, scale applied to its coordinates)."""
    import cv2

    h, w = img.shape[:2]
    target = min(max(w, min_width), max_width)
    if target == w:
        return img.copy(), 1.0
    s = target / w
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return cv2.resize(img, (target, max(1, round(h * s))), interpolation=interp), s


def write_image(path: str | os.PathLike, img: np.ndarray, quality: int = 90) -> Path:
    """Write an RGB uint8 image as JPEG or PNG (by suffix); raises OSError on failure."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(path.suffix or ".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise OSError(f"cannot encode image for {path}")
    path.write_bytes(buf.tobytes())
    return path
