"""Boxes drawn on images: galleries, the augment preview and predict all use ``draw_boxes``
(OpenCV, Hershey font: nothing to fetch).

Colours are RGB: ground truth green, true positives blue, false positives red; classes by
``class_color``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "GT_COLOR",
    "TP_COLOR",
    "FP_COLOR",
    "class_color",
    "draw_label",
    "draw_boxes",
    "draw_detections",
    "fit_width",
    "write_image",
]

GT_COLOR = (0, 200, 0)
TP_COLOR = (30, 90, 255)
FP_COLOR = (230, 20, 20)
# per-class colours (RGB) that stay apart from each other and from gray/black backgrounds
_PALETTE = [
    (255, 56, 56), (255, 157, 151), (255, 112, 31), (255, 178, 29), (207, 210, 49),
    (72, 249, 10), (146, 204, 23), (61, 219, 134), (0, 188, 211), (255, 114, 209),
    (0, 194, 255), (52, 69, 147), (100, 115, 255), (0, 24, 236), (132, 56, 255),
    (82, 0, 133), (203, 56, 255), (255, 149, 200), (255, 55, 199), (255, 140, 0),
]  # fmt: skip


def class_color(c: int) -> tuple[int, int, int]:
    """RGB colour of class ``c`` (a fixed palette of 20 well-separated colours, repeated)."""
    return _PALETTE[c % len(_PALETTE)]


def draw_label(
    img: np.ndarray, text: str, x: int, y: int, color: tuple[int, int, int], scale: float = 0.4
) -> None:
    """Text on a filled strip whose bottom-left corner is (x, y), kept inside ``img``; black or
    white ink, whichever reads better on ``color`` (RGB)."""
    import cv2

    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), base = cv2.getTextSize(text, font, scale, 1)
    x = min(max(x, 0), max(img.shape[1] - tw - 2, 0))
    y = max(y, th + base + 1)
    cv2.rectangle(img, (x, y - th - base - 1), (x + tw + 2, y), color, cv2.FILLED)
    luma = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    ink = (0, 0, 0) if luma > 140 else (255, 255, 255)
    cv2.putText(img, text, (x + 1, y - base), font, scale, ink, 1, cv2.LINE_AA)


def draw_boxes(
    img: np.ndarray,
    boxes: np.ndarray,
    color: tuple[int, int, int] | Sequence[tuple[int, int, int]],
    labels: Sequence[str] | None = None,
    thickness: int = 1,
    font_scale: float = 0.4,
) -> np.ndarray:
    """Draw xyxy boxes (N, 4) in pixels of ``img`` (H, W, 3) RGB uint8, in place; returns img.

    The one box drawer of detforge (galleries, augment preview, predict images and video).
    Coordinates are continuous (pixel i covers [i, i + 1)), so a box's outline is on its last
    pixel inside. color: one RGB colour, or one per box. Labels go on a filled strip above each
    box so they stay readable on any background.
    """
    import cv2

    h, w = img.shape[:2]
    for i, b in enumerate(np.asarray(boxes, np.float64).reshape(-1, 4)):
        col = color[i] if isinstance(color[0], tuple | list) else color
        x1, y1 = min(max(0, round(b[0])), w - 1), min(max(0, round(b[1])), h - 1)
        x2, y2 = min(max(0, round(b[2]) - 1), w - 1), min(max(0, round(b[3]) - 1), h - 1)
        cv2.rectangle(img, (x1, y1), (x2, y2), col, thickness, cv2.LINE_AA)
        if labels is not None and labels[i]:
            draw_label(img, labels[i], x1, y1, col, font_scale)
    return img


def draw_detections(img_rgb: np.ndarray, pred) -> np.ndarray:
    """BGR copy of an RGB image with a prediction's boxes (``pred.boxes`` (D, 4) xyxy pixels,
    ``.scores``, ``.classes``, ``.names``) and 'name score' labels in class colours, the line
    width by image size: the annotated images and videos of ``predict``."""
    import cv2

    out = img_rgb.copy()
    lw = max(1, round(sum(out.shape[:2]) / 600))
    cls = [int(c) for c in pred.classes]
    labels = [f"{pred.names[c]} {s:.2f}" for c, s in zip(cls, pred.scores, strict=True)]
    draw_boxes(out, pred.boxes, [class_color(c) for c in cls], labels, lw, 0.4 * lw)
    return cv2.cvtColor(out, cv2.COLOR_RGB2BGR)


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
