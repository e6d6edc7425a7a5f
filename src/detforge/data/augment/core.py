"""Augmentation core: the sample contract, settings, box and geometry ops every transform uses.

A sample is a dict with at least ``img``: uint8 (H, W, 3) RGB numpy, or (H, W) for a gray
image (R = G = B, kept to one channel for speed until the end), and ``labels``: float32 (n, 5)
``[cls, x1, y1, x2, y2]`` in pixels of ``img``. Optional keys: ``visible`` float32 (n,), the
fraction of each box's original area still visible (a mosaic cuts boxes at its canvas edge; absent
means all ones), and ``mosaic`` (bool), False once ``close_mosaic`` has switched mosaic and mixup
off for this sample's epoch (absent means allowed). A transform is any callable
``t(sample, rng) -> sample`` taking a ``numpy.random.Generator``; all randomness comes from that
generator so a sample is a pure function of its seed. ``Compose`` chains them.

Each transform is a leaf module that imports only this one (``hsv``, ``flip``, ``mosaic``,
``perspective``, ``mix``, ``albument``); ``pipeline.build_train_transforms`` assembles them.
``Layout`` (images placed on a virtual canvas) and ``TileSource`` live here because the mosaic
makes them and the perspective and mixup consume them.

Box coordinates are continuous: pixel ``i`` covers ``[i, i + 1)``, so an image of width ``w``
spans ``[0, w]``. OpenCV warps address pixel centres, hence the half-pixel terms in
``warp_matrix_for_cv2``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from ...config.schema import AugmentSection

__all__ = [
    "AugmentParams",
    "Sample",
    "Transform",
    "Compose",
    "letterbox",
    "resize_long_side",
    "affine_boxes",
    "clip_boxes",
    "filter_boxes",
    "box_visible",
    "warp_matrix_for_cv2",
    "Tile",
    "TileSource",
    "Layout",
    "Placer",
]

_SCHEMA = AugmentSection()  # the defaults of the augment settings

Sample = dict[str, Any]
Transform = Callable[[Sample, np.random.Generator], Sample]


@dataclass
class AugmentParams:
    """Training augmentation settings (the fields of the ``augment`` config section).

    hsv_h: hue shift, fraction of the hue circle (+-); hsv_s, hsv_v: saturation / value gain
    jitter (gain in 1 +- value); fliplr, flipud: flip probabilities; scale: random scale in
    1 +- scale; translate: random shift in +- translate * imgsz; degrees: rotation in +- degrees;
    shear: shear angles in +- shear degrees (x and y); perspective: projective terms in
    +- perspective per pixel. mosaic: probability of a mosaic, mosaic9: probability that a mosaic
    has 9 images instead of 4; mixup: probability of blending in a second image (ratio drawn from
    Beta(mixup_beta, mixup_beta)); copy_paste: probability per object of pasting a mirrored copy
    of its box region where it covers less than copy_paste_ioa of every other box.

    Boxes left after a geometric transform are kept only if both sides >= min_side px, area >=
    min_area px^2, aspect ratio (long / short side) <= max_aspect and at least min_visible of
    their area stays inside the image.

    Defaults are those of the config's ``augment`` section (one source of truth); mixup_beta and
    copy_paste_ioa are constants of the methods, not settings.
    """

    hsv_h: float = _SCHEMA.hsv_h
    hsv_s: float = _SCHEMA.hsv_s
    hsv_v: float = _SCHEMA.hsv_v
    fliplr: float = _SCHEMA.fliplr
    flipud: float = _SCHEMA.flipud
    scale: float = _SCHEMA.scale
    translate: float = _SCHEMA.translate
    degrees: float = _SCHEMA.degrees
    shear: float = _SCHEMA.shear
    perspective: float = _SCHEMA.perspective
    mosaic: float = _SCHEMA.mosaic
    mosaic9: float = _SCHEMA.mosaic9
    mixup: float = _SCHEMA.mixup
    mixup_beta: float = 32.0
    copy_paste: float = _SCHEMA.copy_paste
    copy_paste_ioa: float = 0.3
    min_area: float = _SCHEMA.min_area
    min_side: float = _SCHEMA.min_side
    max_aspect: float = _SCHEMA.max_aspect
    min_visible: float = _SCHEMA.min_visible

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | Any) -> AugmentParams:
        """Take the fields this class has from a mapping or an object (e.g. the config's
        ``AugmentSection``); other keys (close_mosaic, multi_scale, albumentations) are ignored."""
        get = values.get if isinstance(values, Mapping) else lambda k, d: getattr(values, k, d)
        missing = object()
        kw = {}
        for name in cls.__dataclass_fields__:
            v = get(name, missing)
            if v is not missing:
                kw[name] = float(v)
        return cls(**kw)


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
    """Resize (H, W[, 3]) so the long side is ``size``; return (image, scale factor)."""
    h, w = img.shape[:2]
    r = size / max(h, w)
    nw, nh = max(1, round(w * r)), max(1, round(h * r))
    return _resize(img, nw, nh), r


def letterbox(
    img: np.ndarray,
    labels: np.ndarray,
    size: int,
    pad_value: int = 114,
    shape: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray, float, tuple[int, int]]:
    """Resize (H, W[, 3]) so its long side is ``size`` and centre it, padded, on a canvas of
    ``shape`` (H, W) (default square ``size`` x ``size``; rectangular validation passes the
    batch's shared rectangle).

    labels: (n, 5) [cls, x1, y1, x2, y2] pixels of ``img``. Returns (canvas, labels in canvas
    pixels, ratio, (left, top)); ``(xyxy - [left, top, left, top]) / ratio`` maps back exactly.
    """
    out, r = resize_long_side(img, size)
    h, w = out.shape[:2]
    H, W = shape or (size, size)
    if h > H or w > W:
        raise ValueError(f"image resized to {h}x{w} does not fit the {H}x{W} canvas")
    left, top = (W - w) // 2, (H - h) // 2
    if (h, w) != (H, W):
        out = cv2.copyMakeBorder(
            out, top, H - h - top, left, W - w - left, cv2.BORDER_CONSTANT,
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


def box_visible(sample: Sample) -> np.ndarray:
    """The sample's per-box visible fraction (n,) float32 (ones when it has none)."""
    v = sample.get("visible")
    return np.ones(len(sample["labels"]), np.float32) if v is None else v


def clip_boxes(
    xyxy: np.ndarray, width: int, height: int, p: AugmentParams, prior: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip (n, 4) boxes to a width x height image and apply ``p``'s box rules.

    prior: (n,) fraction of each box already lost before (``box_visible``); the visible
    fraction checked against ``p.min_visible`` is ``prior * clipped area / area``, so two cuts
    (mosaic canvas, then the warp) count together. Returns (clipped (n, 4), keep (n,) bool,
    visible (n,) float32).
    """
    clipped = xyxy.copy()
    np.clip(clipped[:, 0::2], 0, width, out=clipped[:, 0::2])
    np.clip(clipped[:, 1::2], 0, height, out=clipped[:, 1::2])
    w = clipped[:, 2] - clipped[:, 0]
    h = clipped[:, 3] - clipped[:, 1]
    area0 = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    visible = (w * h / np.maximum(area0, 1e-12)).astype(np.float32)
    if prior is not None:
        visible *= prior
    aspect = np.maximum(w / np.maximum(h, 1e-6), h / np.maximum(w, 1e-6))
    keep = (
        (w >= p.min_side)
        & (h >= p.min_side)
        & (w * h >= p.min_area)
        & (w * h > 0)
        & (aspect <= p.max_aspect)
        & (visible >= p.min_visible)
    )
    return clipped, keep, visible


def filter_boxes(
    xyxy: np.ndarray, width: int, height: int, p: AugmentParams
) -> tuple[np.ndarray, np.ndarray]:
    """Clip (n, 4) boxes to the image; return (clipped boxes, keep mask (n,)) per ``p``."""
    clipped, keep, _ = clip_boxes(xyxy, width, height, p)
    return clipped, keep


def warp_matrix_for_cv2(m: np.ndarray) -> np.ndarray:
    """Continuous-coordinate 2x3 affine or 3x3 homography -> the matrix OpenCV's warps need.

    OpenCV maps pixel centres: x_i = x_c - 0.5 on both sides, so the matrix becomes
    T(-0.5) @ m @ T(+0.5).
    """
    m = np.asarray(m, np.float64)
    full = np.vstack([m, [0.0, 0.0, 1.0]]) if m.shape == (2, 3) else m.copy()
    shift = np.array([[1.0, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1.0]])
    unshift = np.array([[1.0, 0, -0.5], [0, 1.0, -0.5], [0, 0, 1.0]])
    out = unshift @ full @ shift
    return out[:2] if m.shape == (2, 3) else out / out[2, 2]


Tile = tuple[np.ndarray, np.ndarray]  # (img (h, w[, 3]) uint8, labels (n, 5) xyxy tile pixels)


class TileSource(Protocol):
    """Where mosaic and mixup take other images: ``YoloDataset`` is one."""

    def __len__(self) -> int: ...

    def load_tile(self, index: int) -> Tile:
        """Image ``index`` resized to a long side of the training size, and its labels
        float32 (n, 5) [cls, x1, y1, x2, y2] in pixels of that image."""
        ...


@dataclass
class Layout:
    """Images placed on a virtual (height, width) canvas, nothing copied yet: image k's top-left
    pixel at ``origins[k]`` = (x, y); whatever falls off the canvas is cut, the rest is pad.

    ``render`` draws any window of it, so a warp that shows only part of a mosaic canvas needs
    only that part drawn (``RandomPerspective`` does this).
    """

    images: list[np.ndarray]
    origins: np.ndarray  # (k, 2) int
    height: int
    width: int

    @classmethod
    def single(cls, img: np.ndarray) -> Layout:
        return cls([img], np.zeros((1, 2), int), img.shape[0], img.shape[1])

    def render(self, x0: int, y0: int, w: int, h: int, pad_value: int = 114) -> np.ndarray:
        """Pixels of the canvas window [x0, x0 + w) x [y0, y0 + h) (which may reach beyond the
        canvas): uint8 (h, w, 3), or (h, w) if every image is gray. A window inside a single
        image is returned as a view of it."""
        inside = x0 >= 0 and y0 >= 0 and x0 + w <= self.width and y0 + h <= self.height
        if len(self.images) == 1 and not self.origins.any() and inside:
            return self.images[0][y0 : y0 + h, x0 : x0 + w]
        colour = any(img.ndim == 3 for img in self.images)
        out = np.full((h, w, 3) if colour else (h, w), pad_value, np.uint8)
        for img, (ox, oy) in zip(self.images, self.origins.tolist(), strict=True):
            ih, iw = img.shape[:2]
            # the image, cut by the canvas and by the window, in canvas coordinates
            ax1, ay1 = max(ox, 0, x0), max(oy, 0, y0)
            ax2, ay2 = min(ox + iw, self.width, x0 + w), min(oy + ih, self.height, y0 + h)
            if ax2 <= ax1 or ay2 <= ay1:
                continue
            part = img[ay1 - oy : ay2 - oy, ax1 - ox : ax2 - ox]
            # a gray image on a colour canvas: broadcast its one channel to three
            out[ay1 - y0 : ay2 - y0, ax1 - x0 : ax2 - x0] = (
                part[..., None] if part.ndim < out.ndim else part
            )
        return out


class Placer(Protocol):
    """Places a sample's image with others on a canvas (``mosaic.Mosaic``), or declines."""

    def place(self, sample: Sample, rng: np.random.Generator) -> Layout | None: ...
