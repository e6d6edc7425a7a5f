"""Geometric and photometric transforms on a sample dict, and the training chain builder.

A sample is a dict with at least ``img``: uint8 (H, W, 3) RGB numpy, or (H, W) for a gray
image (R = G = B, kept to one channel for speed until the end), and ``labels``: float32 (n, 5)
``[cls, x1, y1, x2, y2]`` in pixels of ``img``. Optional keys: ``visible`` float32 (n,), the
fraction of each box's original area still visible (a mosaic cuts boxes at its canvas edge; absent
means all ones), and ``mosaic`` (bool), False once ``close_mosaic`` has switched mosaic and mixup
off for this sample's epoch (absent means allowed). A transform is any callable
``t(sample, rng) -> sample`` taking a ``numpy.random.Generator``; all randomness comes from that
generator so a sample is a pure function of its seed. ``Compose`` chains them.

The training chain (``build_train_transforms``): mosaic (4 or 9 images on a 2 * size canvas,
``mosaic.py``) -> random perspective to (size, size) (``perspective.py``) -> copy-paste ->
mixup with a second image that went through the same three steps (``mix.py``) -> albumentations
(``albument.py``) -> HSV -> flips.

Box coordinates are continuous: pixel ``i`` covers ``[i, i + 1)``, so an image of width ``w``
spans ``[0, w]``. OpenCV warps address pixel centres, hence the half-pixel terms in
``warp_matrix_for_cv2``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ..config.schema import AugmentSection

if TYPE_CHECKING:
    from detforge.data.mosaic import TileSource

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
    "RandomHSV",
    "RandomFlip",
    "build_train_transforms",
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


def build_train_transforms(
    size: int,
    params: AugmentParams,
    source: TileSource | None = None,
    pad_value: int = 114,
    albumentations: Sequence[Mapping[str, Any]] = (),
) -> Compose:
    """The training chain for (size, size) outputs.

    source: where mosaic and mixup take their other images (``YoloDataset``: ``len`` and
    ``load_tile(index) -> (img, labels)``); None leaves mosaic and mixup out. The input sample is
    one image whose long side is ``size`` (a "tile"). albumentations: the config's list of
    ``{name: ..., p: ..., **kwargs}`` (needs the optional package; see ``albument.py``).

    HSV runs on the output canvas, whose size is bounded, rather than on a source image of any
    size; the padding is jittered with the image, which carries no information either way.
    """
    # imported here: these modules build on the primitives above
    from detforge.data.albument import build_albumentations
    from detforge.data.mix import CopyPaste, MixUp
    from detforge.data.mosaic import Mosaic
    from detforge.data.perspective import RandomPerspective

    mosaic = None
    if source is not None and params.mosaic > 0:
        mosaic = Mosaic(source, size, params.mosaic, params.mosaic9, pad_value)
    # the perspective places the mosaic itself and draws only the part of it that it shows
    geometric: list[Transform] = [RandomPerspective(size, params, pad_value, mosaic=mosaic)]
    if params.copy_paste > 0:
        geometric.append(CopyPaste(params.copy_paste, params.copy_paste_ioa))
    chain = list(geometric)
    if source is not None and params.mixup > 0:
        chain.append(MixUp(source, Compose(geometric), params.mixup, params.mixup_beta))
    extra = build_albumentations(albumentations, params, pad_value)
    if extra is not None:
        chain.append(extra)
    chain += [
        RandomHSV(params.hsv_h, params.hsv_s, params.hsv_v),
        RandomFlip(params.fliplr, horizontal=True),
        RandomFlip(params.flipud, horizontal=False),
    ]
    return Compose(chain)
