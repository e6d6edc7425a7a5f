"""Geometric and photometric transforms on a sample dict.

A sample is a dict with at least ``img``: uint8 (H, W, 3) RGB numpy, or (H, W) for a gray
image (R = G = B, kept to one channel for speed until the end), and ``labels``: float32 (n, 5)
``[cls, x1, y1, x2, y2]`` in pixels of ``img``. A transform is any callable
``t(sample, rng) -> sample`` taking a ``numpy.random.Generator``; all randomness comes from that
generator so a sample is a pure function of its seed. ``Compose`` chains them; later transforms
(mosaic, mixup, perspective) plug in the same way.

Box coordinates are continuous: pixel ``i`` covers ``[i, i + 1)``, so an image of width ``w``
spans ``[0, w]``. OpenCV warps address pixel centres, hence the half-pixel terms in
``warp_matrix_for_cv2``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

__all__ = [
    "AugmentParams",
    "Sample",
    "Transform",
    "Compose",
    "letterbox",
    "resize_long_side",
    "affine_boxes",
    "filter_boxes",
    "warp_matrix_for_cv2",
    "RandomHSV",
    "RandomAffine",
    "RandomFlip",
    "build_train_transforms",
]

Sample = dict[str, Any]
Transform = Callable[[Sample, np.random.Generator], Sample]


@dataclass
class AugmentParams:
    """Training augmentation settings.

    hsv_h: hue shift, fraction of the hue circle (+-); hsv_s, hsv_v: saturation / value gain
    jitter (gain in 1 +- value); fliplr, flipud: flip probabilities; scale: random scale in
    1 +- scale; translate: random shift in +- translate * imgsz. Boxes left after the affine are
    kept only if both sides >= min_side px, area >= min_area px^2, aspect ratio (long / short
    side) <= max_aspect and at least min_visible of their area stays inside the image.
    """

    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    fliplr: float = 0.5
    flipud: float = 0.0
    scale: float = 0.5
    translate: float = 0.1
    min_area: float = 4.0
    min_side: float = 2.0
    max_aspect: float = 20.0
    min_visible: float = 0.1


class Compose:
    """Apply transforms in order: ``Compose([a, b])(sample, rng) == b(a(sample, rng), rng)``."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        for t in self.transforms:
            sample = t(sample, rng)
        return sample

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    if (img.shape[1], img.shape[0]) == (w, h):
        return img
    # INTER_AREA averages when shrinking (no aliasing of thin structures); linear when enlarging
    shrink = w < img.shape[1]
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def resize_long_side(img: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """Resize (H, W, 3) so the long side is ``size``; return (image, scale factor)."""
    h, w = img.shape[:2]
    r = size / max(h, w)
    nw, nh = max(1, round(w * r)), max(1, round(h * r))
    return _resize(img, nw, nh), r


def letterbox(
    img: np.ndarray, labels: np.ndarray, size: int, pad_value: int = 114
) -> tuple[np.ndarray, np.ndarray, float, tuple[int, int]]:
    """Fit (H, W, 3) into a (size, size) canvas keeping the aspect ratio, centred, padded.

    labels: (n, 5) [cls, x1, y1, x2, y2] pixels of ``img``. Returns (canvas, labels in canvas
    pixels, ratio, (left, top)); ``(xyxy - [left, top, left, top]) / ratio`` maps back exactly.
    """
    out, r = resize_long_side(img, size)
    h, w = out.shape[:2]
    left, top = (size - w) // 2, (size - h) // 2
    if (h, w) != (size, size):
        out = cv2.copyMakeBorder(
            out, top, size - h - top, left, size - w - left, cv2.BORDER_CONSTANT,
            value=(pad_value,) * 3,
        )  # fmt: skip
    labels = labels.copy()
    labels[:, 1:5] = labels[:, 1:5] * r + np.array([left, top, left, top], np.float32)
    return out, labels, r, (left, top)


def affine_boxes(xyxy: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Boxes (n, 4) through a 2x3 affine ``m`` -> (n, 4) axis-aligned hull of the 4 corners."""
    x1, y1, x2, y2 = xyxy.T
    corners = np.stack([x1, y1, x2, y1, x2, y2, x1, y2], axis=1).reshape(-1, 4, 2)
    t = corners @ m[:, :2].T + m[:, 2]
    return np.concatenate([t.min(axis=1), t.max(axis=1)], axis=1).astype(np.float32)


def filter_boxes(
    xyxy: np.ndarray, width: int, height: int, p: AugmentParams
) -> tuple[np.ndarray, np.ndarray]:
    """Clip (n, 4) boxes to the image; return (clipped boxes, keep mask (n,)) per ``p``."""
    clipped = xyxy.copy()
    np.clip(clipped[:, 0::2], 0, width, out=clipped[:, 0::2])
    np.clip(clipped[:, 1::2], 0, height, out=clipped[:, 1::2])
    w = clipped[:, 2] - clipped[:, 0]
    h = clipped[:, 3] - clipped[:, 1]
    area0 = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    aspect = np.maximum(w / np.maximum(h, 1e-6), h / np.maximum(w, 1e-6))
    keep = (
        (w >= p.min_side)
        & (h >= p.min_side)
        & (w * h >= p.min_area)
        & (aspect <= p.max_aspect)
        & (w * h >= p.min_visible * area0)
    )
    return clipped, keep


def warp_matrix_for_cv2(m: np.ndarray) -> np.ndarray:
    """Continuous-coordinate affine (2x3) -> the matrix cv2.warpAffine needs (pixel centres)."""
    # x_c = x_i + 0.5 on both sides: x'_i = A x_i + (A 0.5 + t - 0.5)
    out = m.astype(np.float64).copy()
    out[:, 2] += out[:, :2].sum(axis=1) * 0.5 - 0.5
    return out


class RandomHSV:
    """Jitter hue (shift), saturation and value (gains) with one 3-channel LUT."""

    def __init__(self, h: float, s: float, v: float) -> None:
        self.h, self.s, self.v = h, s, v

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        dh, ds, dv = rng.uniform(-1, 1, 3) * (self.h, self.s, self.v)
        if not (dh or ds or dv):
            return sample
        x = np.arange(256, dtype=np.float32)
        # OpenCV's 8-bit hue runs over 0..179; the shift is a fraction of that circle
        lut_h = np.mod(np.round(x + dh * 180), 180)
        lut_s = np.clip(np.round(x * (1 + ds)), 0, 255)
        lut_v = np.clip(np.round(x * (1 + dv)), 0, 255)
        lut = np.stack([lut_h, lut_s, lut_v], axis=-1).astype(np.uint8).reshape(256, 1, 3)
        img = sample["img"]
        if img.ndim == 2:
            # gray has zero saturation: HSV -> RGB gives back R = G = B = V, so only V acts
            sample["img"] = cv2.LUT(img, lut[:, :, 2].copy())
            return sample
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        cv2.LUT(hsv, lut, dst=hsv)
        sample["img"] = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        return sample


class RandomAffine:
    """Fit, random scale and translation onto a (size, size) canvas in one ``cv2.warpAffine``.

    The image is scaled so its long side is ``size`` times a random ``1 +- scale``, its centre
    put at the canvas centre shifted by ``+- translate * size``. Folding the fit into the warp
    saves a resize pass and a second interpolation (give it images at most ~2x ``size``; larger
    ones alias, so the dataset shrinks those first). Boxes follow the same matrix, are clipped
    and filtered by ``filter_boxes``. Composes ``ratio`` and ``pad`` (offset) of the sample.
    """

    def __init__(self, size: int, params: AugmentParams, pad_value: int = 114) -> None:
        self.size, self.p, self.pad_value = size, params, pad_value

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        img, size = sample["img"], self.size
        h, w = img.shape[:2]
        s = rng.uniform(1 - self.p.scale, 1 + self.p.scale) * size / max(h, w)
        tx, ty = rng.uniform(-self.p.translate, self.p.translate, 2) * size
        ox, oy = size / 2 + tx - s * w / 2, size / 2 + ty - s * h / 2
        m = np.array([[s, 0.0, ox], [0.0, s, oy]])
        sample["img"] = cv2.warpAffine(
            img, warp_matrix_for_cv2(m), (size, size), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT, borderValue=(self.pad_value,) * 3,
        )  # fmt: skip
        labels = sample["labels"]
        if len(labels):
            boxes, keep = filter_boxes(affine_boxes(labels[:, 1:5], m), size, size, self.p)
            labels = np.concatenate([labels[:, :1], boxes], axis=1)[keep]
        sample["labels"] = labels.astype(np.float32, copy=False)
        # compose with the mapping so far (x = ratio * x0 + pad) so it still maps back
        px, py = sample.get("pad", (0.0, 0.0))
        sample["ratio"] = sample.get("ratio", 1.0) * s
        sample["pad"] = (s * px + ox, s * py + oy)
        return sample


class RandomFlip:
    """Mirror the image left-right (``horizontal``) or top-bottom with probability ``p``."""

    def __init__(self, p: float, horizontal: bool = True) -> None:
        self.p, self.horizontal = p, horizontal

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        # draw even when p is 0 or 1 so the random stream does not depend on the settings
        if rng.random() >= self.p:
            return sample
        img, labels = sample["img"], sample["labels"].copy()
        h, w = img.shape[:2]
        if self.horizontal:
            sample["img"] = cv2.flip(img, 1)
            labels[:, [1, 3]] = w - labels[:, [3, 1]]
        else:
            sample["img"] = cv2.flip(img, 0)
            labels[:, [2, 4]] = h - labels[:, [4, 2]]
        sample["labels"] = labels
        return sample


def build_train_transforms(size: int, params: AugmentParams, pad_value: int = 114) -> Compose:
    """Default training chain: affine (fit + scale + translate), HSV, flips.

    HSV runs on the canvas, whose size is bounded by ``size``, rather than on a source image of
    any size; the padding is jittered with the image, which carries no information either way.
    """
    return Compose(
        [
            RandomAffine(size, params, pad_value),
            RandomHSV(params.hsv_h, params.hsv_s, params.hsv_v),
            RandomFlip(params.fliplr, horizontal=True),
            RandomFlip(params.flipud, horizontal=False),
        ]
    )
