"""Built-in synthetic demo dataset ("shapes"), used by ``detforge train`` without ``data=``.

Content
    Six shape classes with distinct geometry -- ``circle``, ``rectangle``, ``triangle``,
    ``cross``, ``ring`` (annulus, hole shows the background) and ``star`` -- drawn filled
    with anti-aliased edges (``cv2.LINE_AA``, sub-pixel vertices), a random rotation, a mild
    lighting gradient and a per-instance colour. Each class has a hue tendency (70% of the
    instances are near the class hue, 30% get any hue), so colour helps early training but
    shape is needed to get everything right.
Scene
    A gradient background with low-frequency noise and sometimes stripes, clutter that is
    *not* labelled (thin lines and soft blurred blobs), sensor noise on top. 1-8 objects per
    image, placed largest first; later objects may cover an earlier one a little (each keeps
    >= 75% of its area, a new object overlaps others by <= 40% of its own area).
Sizes
    The longest box side is drawn from 8-16 px (15%), 16-32 px (30%), 32-96 px (42%) and
    96 px to 42% of the image (13%), so COCO small / medium / large are all present.
Labels
    YOLO text (``cls cx cy w h``, normalised, 6 decimals), the tight box of the *visible*
    shape pixels (anti-aliased coverage >= 50%, not hidden by a later object). Empty images
    (no objects, clutter only; ``empty_fraction``, default 5%) get an empty label file.
Files
    ``images/{train,val}/NNNNNN.jpg`` (JPEG quality 90 with 4:4:4 chroma so tiny objects keep
    their colour: ~19 KB per image, ~6x smaller, ~15x faster to write and ~3x faster to
    decode than PNG; decoding is deterministic), ``labels/{train,val}/*.txt``
    and ``data.yaml`` (``path: .``, so the folder can be moved). Everything is a function of
    ``(seed, split, index, imgsz, empty_fraction)``: the same seed gives byte-identical files
    with the same numpy / OpenCV builds, and :func:`render_demo_image` re-renders one image
    with its per-object masks for checking.

Longer than the ~300-line guide: the shape drawing, backgrounds and the dataset writer are
one generator whose output must stay byte-stable (the demo's benchmark figures depend on it).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

DEMO_VERSION = "demo-v1"
CLASS_NAMES: tuple[str, ...] = ("circle", "rectangle", "triangle", "cross", "ring", "star")
CLASS_HUES: tuple[int, ...] = (0, 120, 60, 25, 150, 90)  # OpenCV hue units (0-179)
DEFAULTS: dict[str, float | int] = dict(
    num_train=500, num_val=100, imgsz=256, seed=0, empty_fraction=0.05
)
_SIZE_BINS = ((8.0, 16.0, 0.15), (16.0, 32.0, 0.30), (32.0, 96.0, 0.42), (96.0, None, 0.13))
_MAX_FRAC = 0.42  # largest object side as a fraction of the image side
_COUNT_P = np.array([3, 4, 4, 4, 3, 2, 1, 1]) / 22  # objects per image: 1..8
_SPLITS = {"train": 0, "val": 1}
_SHIFT = 4  # sub-pixel bits for cv2 drawing
_STALE_TMP_SECONDS = 3600.0
_JPEG_QUALITY = 90


@dataclass
class DemoSample:
    """One rendered demo image with its ground truth.

    ``image`` is (H, W, 3) uint8 BGR (as written to disk, before JPEG); ``classes`` (n,) int64;
    ``boxes`` (n, 4) float32 ``x1, y1, x2, y2`` in pixels (pixel edges, so ``x2`` is the last
    covered column + 1); ``masks`` (n, H, W) bool visible pixels of each object; ``colors``
    (n, 3) float32 BGR fill colour of each object.
    """

    image: np.ndarray
    classes: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray
    colors: np.ndarray


def _is_empty(index: int, seed: int, split: str, fraction: float) -> bool:
    """Low-discrepancy choice of empty images: any run of n images holds ~n*fraction."""
    offset = (seed * 0.7548776662 + _SPLITS[split] * 0.5698402910) % 1.0
    return ((index + 1) * 0.6180339887 + offset) % 1.0 < fraction


def _shape_contours(cls: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Unit-size contours (first = outer, optional second = hole) of class ``cls``."""
    t = np.linspace(0.0, 2 * np.pi, 48, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t)], 1)
    name = CLASS_NAMES[cls]
    if name == "circle":
        return [circle]
    if name == "rectangle":
        a = rng.uniform(0.45, 1.0)
        return [np.array([[-1, -a], [1, -a], [1, a], [-1, a]], dtype=np.float64)]
    if name == "triangle":
        ang = np.deg2rad(90 + 120 * np.arange(3) + rng.uniform(-10, 10, 3))
        return [np.stack([np.cos(ang), np.sin(ang)], 1)]
    if name == "cross":
        w = rng.uniform(0.22, 0.34)
        arm = np.array([[1, -w], [1, w], [w, w]])  # one arm tip + inner corner, then rotate
        quarter = np.array([[0.0, -1.0], [1.0, 0.0]])
        return [np.concatenate([arm @ np.linalg.matrix_power(quarter, k).T for k in range(4)])]
    if name == "ring":
        return [circle, circle * rng.uniform(0.45, 0.62)]
    ang = np.pi / 2 + np.arange(10) * np.pi / 5  # star
    rad = np.where(np.arange(10) % 2 == 0, 1.0, rng.uniform(0.4, 0.5))
    return [np.stack([rad * np.cos(ang), rad * np.sin(ang)], 1)]


def _sample_size(rng: np.random.Generator, imgsz: int) -> float:
    """Longest box side in pixels, log-uniform inside a size bin picked by weight."""
    top = _MAX_FRAC * imgsz
    bins = [(lo, min(hi or top, top), p) for lo, hi, p in _SIZE_BINS if lo < top]
    probs = np.array([p for *_, p in bins])
    lo, hi, _ = bins[rng.choice(len(bins), p=probs / probs.sum())]
    return float(np.exp(rng.uniform(np.log(lo), np.log(max(hi, lo)))))


def _hsv_to_bgr(h: float, s: float, v: float) -> np.ndarray:
    px = np.array([[[h % 180, s, v]]], dtype=np.uint8)
    return cv2.cvtColor(px, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _background(rng: np.random.Generator, n: int) -> np.ndarray:
    """Gradient + low-frequency noise (+ stripes sometimes), float32 (n, n, 3) BGR."""
    c0 = _hsv_to_bgr(rng.uniform(0, 180), rng.uniform(0, 90), rng.uniform(40, 200))
    c1 = _hsv_to_bgr(rng.uniform(0, 180), rng.uniform(0, 90), rng.uniform(40, 200))
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    ang = rng.uniform(0, 2 * np.pi)
    g = np.clip((np.cos(ang) * (xx - 0.5) + np.sin(ang) * (yy - 0.5)) + 0.5, 0, 1)[..., None]
    img = c0 * (1 - g) + c1 * g
    k = int(rng.integers(3, 9))
    low = rng.normal(0, rng.uniform(8, 25), (k, k, 3)).astype(np.float32)
    img += cv2.resize(low, (n, n), interpolation=cv2.INTER_CUBIC)
    if rng.random() < 0.4:
        freq, a2 = rng.uniform(4, 24), rng.uniform(0, np.pi)
        phase = (np.cos(a2) * xx + np.sin(a2) * yy) * freq * 2 * np.pi
        img += (rng.uniform(6, 18) * np.sin(phase))[..., None]
    return img


def _add_clutter(img: np.ndarray, rng: np.random.Generator) -> None:
    """Unlabelled clutter: thin anti-aliased lines and soft (blurred) blobs, in place."""
    n = img.shape[0]
    for _ in range(int(rng.integers(2, 9))):
        col = _hsv_to_bgr(rng.uniform(0, 180), rng.uniform(0, 255), rng.uniform(30, 255))
        p0, p1 = (rng.uniform(-0.1, 1.1, (2, 2)) * n * 16).astype(np.int32)
        thick = int(rng.integers(1, 3))
        cv2.line(img, tuple(map(int, p0)), tuple(map(int, p1)), col.tolist(), thick,
                 cv2.LINE_AA, _SHIFT)  # fmt: skip
    layer = np.zeros_like(img)
    alpha = np.zeros(img.shape[:2], np.float32)
    for _ in range(int(rng.integers(2, 7))):
        col = _hsv_to_bgr(rng.uniform(0, 180), rng.uniform(0, 180), rng.uniform(30, 255))
        c = tuple(int(v) for v in rng.uniform(0, n, 2))
        axes = tuple(int(v) for v in rng.uniform(2, 10, 2))
        ang = float(rng.uniform(0, 180))
        cv2.ellipse(layer, c, axes, ang, 0, 360, col.tolist(), -1)
        cv2.ellipse(alpha, c, axes, ang, 0, 360, 1.0, -1)
    sigma = float(rng.uniform(1.5, 3.0))
    layer = cv2.GaussianBlur(layer, (0, 0), sigma)
    alpha = cv2.GaussianBlur(alpha, (0, 0), sigma)[..., None]
    img += (layer - img * alpha) * rng.uniform(0.6, 0.95)


def _place(cls: int, size: float, rng: np.random.Generator, n: int) -> np.ndarray:
    """Render one object's coverage (n, n) uint8 at a random pose fully inside the image."""
    contours = _shape_contours(cls, rng)
    th = rng.uniform(-25, 25) if CLASS_NAMES[cls] == "rectangle" else rng.uniform(0, 360)
    c, s = np.cos(np.deg2rad(th)), np.sin(np.deg2rad(th))
    rot = np.array([[c, -s], [s, c]])
    contours = [p @ rot.T for p in contours]
    lo, hi = contours[0].min(0), contours[0].max(0)
    scale = size / (hi - lo).max()
    ext = (hi - lo) * scale
    corner = rng.uniform(1.0, n - 1.0 - ext)  # top-left of the shape's box
    cov = np.zeros((n, n), np.uint8)
    for k, p in enumerate(contours):
        pts = (((p - lo) * scale + corner - 0.5) * (1 << _SHIFT)).round().astype(np.int32)
        cv2.fillPoly(cov, [pts], 0 if k else 255, cv2.LINE_AA, shift=_SHIFT)
    return cov


def _object_color(cls: int, rng: np.random.Generator) -> np.ndarray:
    hue = rng.normal(CLASS_HUES[cls], 8) if rng.random() < 0.7 else rng.uniform(0, 180)
    return _hsv_to_bgr(hue, rng.uniform(140, 255), rng.uniform(140, 255))


def _layout(
    rng: np.random.Generator, n: int, count: int
) -> tuple[list[int], list[np.ndarray], list[np.ndarray]]:
    """Place ``count`` objects, largest first; return classes, coverages, visible masks."""
    sizes = sorted((_sample_size(rng, n) for _ in range(count)), reverse=True)
    classes: list[int] = []
    covs: list[np.ndarray] = []
    visible: list[np.ndarray] = []  # visible pixels of each placed object so far
    full: list[int] = []
    occupied = np.zeros((n, n), bool)
    for size in sizes:
        cls = int(rng.integers(len(CLASS_NAMES)))
        for _ in range(30):  # placement attempts; the object is dropped if none fits
            cov = _place(cls, size, rng, n)
            m = cov >= 128
            area = int(m.sum())
            if area == 0 or (m & occupied).sum() > 0.4 * area:
                continue
            if all((v & ~m).sum() >= 0.75 * f for v, f in zip(visible, full, strict=True)):
                classes.append(cls)
                covs.append(cov)
                visible = [v & ~m for v in visible] + [m]
                full.append(area)
                occupied |= m
                break
    return classes, covs, visible


def render_demo_image(
    index: int,
    *,
    split: str = "train",
    seed: int = 0,
    imgsz: int = 256,
    empty_fraction: float = 0.05,
) -> DemoSample:
    """Render image ``index`` of ``split`` exactly as :func:`generate_demo_dataset` does."""
    n = int(imgsz)
    rng = np.random.default_rng([int(seed), _SPLITS[split], int(index)])
    img = _background(rng, n)
    _add_clutter(img, rng)
    empty = _is_empty(index, seed, split, empty_fraction)
    count = 0 if empty else int(rng.choice(np.arange(1, 9), p=_COUNT_P))
    classes, covs, visible = _layout(rng, n, count)
    colors = [_object_color(c, rng) for c in classes]
    for cov, col in zip(covs, colors, strict=True):  # paint with a mild lighting gradient
        ys, xs = np.nonzero(cov)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        a = cov[y0:y1, x0:x1, None].astype(np.float32) / 255.0
        gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        d = rng.uniform(-0.25, 0.25, 2) / max(y1 - y0, x1 - x0)
        shade = (1.0 + d[0] * (gy - gy.mean()) + d[1] * (gx - gx.mean()))[..., None]
        roi = img[y0:y1, x0:x1]
        roi += (col * shade - roi) * a
    img += rng.normal(0, rng.uniform(1.5, 4.0), img.shape).astype(np.float32)
    boxes = np.zeros((len(covs), 4), np.float32)
    for i, m in enumerate(visible):
        ys, xs = np.nonzero(m)
        boxes[i] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return DemoSample(
        image=np.clip(img, 0, 255).round().astype(np.uint8),
        classes=np.array(classes, np.int64),
        boxes=boxes,
        masks=np.stack(visible) if visible else np.zeros((0, n, n), bool),
        colors=np.array(colors, np.float32).reshape(-1, 3),
    )


def encode_jpeg(image: np.ndarray) -> bytes:
    """JPEG bytes of a BGR image exactly as written to the dataset."""
    params = [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY]
    params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    ok, buf = cv2.imencode(".jpg", image, params)
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def _label_text(sample: DemoSample, n: int) -> str:
    lines = []
    for c, (x1, y1, x2, y2) in zip(sample.classes, sample.boxes.astype(np.float64), strict=True):
        cx, cy, w, h = (x1 + x2) / 2 / n, (y1 + y2) / 2 / n, (x2 - x1) / n, (y2 - y1) / n
        lines.append(f"{int(c)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
    return "".join(lines)


def generate_demo_dataset(
    root: Path,
    *,
    num_train: int = 500,
    num_val: int = 100,
    imgsz: int = 256,
    seed: int = 0,
    empty_fraction: float = 0.05,
) -> Path:
    """Write the demo dataset (YOLO layout) into ``root`` and return its ``data.yaml``.

    ``data.yaml`` is written last, so its presence marks a complete dataset.
    """
    root = Path(root)
    for split, num in (("train", num_train), ("val", num_val)):
        img_dir, lbl_dir = root / "images" / split, root / "labels" / split
        img_dir.mkdir(parents=True, exist_ok=True)
        lbl_dir.mkdir(parents=True, exist_ok=True)
        for i in range(num):
            s = render_demo_image(
                i, split=split, seed=seed, imgsz=imgsz, empty_fraction=empty_fraction
            )
            (img_dir / f"{i:06d}.jpg").write_bytes(encode_jpeg(s.image))
            (lbl_dir / f"{i:06d}.txt").write_bytes(_label_text(s, imgsz).encode())
    names = "".join(f"  {i}: {name}\n" for i, name in enumerate(CLASS_NAMES))
    yaml_path = root / "data.yaml"
    yaml_path.write_text(
        f"# detforge shapes demo dataset ({DEMO_VERSION}, seed {seed}, {imgsz}px)\n"
        "path: .  # relative to this file\n"
        f"train: images/train\nval: images/val\nnc: {len(CLASS_NAMES)}\nnames:\n{names}",
        encoding="utf-8",
    )
    return yaml_path


def default_cache_dir() -> Path:
    """``$DETFORGE_CACHE`` if set, else ``~/.cache/detforge``."""
    env = os.environ.get("DETFORGE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "detforge"


def demo_dataset_dir(cache_dir: Path | None = None, **overrides: float | int) -> Path:
    """Folder of the cached demo dataset; non-default parameters get their own folder."""
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown demo dataset parameter(s): {sorted(unknown)}")
    params = {k: v for k, v in overrides.items() if DEFAULTS[k] != v}
    if not params:
        return base / DEMO_VERSION
    key = ",".join(f"{k}={params[k]}" for k in sorted(params))
    return base / f"{DEMO_VERSION}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def ensure_demo_dataset(cache_dir: Path | None = None, **overrides: float | int) -> Path:
    """Return the cached demo ``data.yaml``, generating the dataset first if needed.

    Generation happens in a private temporary folder next to the target that is renamed
    into place only when complete, so a crash or a concurrent process never leaves a
    partial dataset behind the final name; if another process wins the race, its dataset is
    used. ``overrides`` (e.g. ``num_train=``) select a separately cached variant.
    """
    target = demo_dataset_dir(cache_dir, **overrides)
    yaml_path = target / "data.yaml"
    if yaml_path.is_file():
        return yaml_path
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        generate_demo_dataset(tmp, **{**DEFAULTS, **overrides})
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the data is not
        if target.exists() and not yaml_path.is_file():  # foreign / broken leftover
            trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
            with contextlib.suppress(OSError):
                os.replace(target, trash / "old")
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.rename(tmp, target)
        except OSError:
            if not yaml_path.is_file():  # not a lost race: a real error
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return yaml_path


def _remove_stale_tmp(target: Path) -> None:
    """Best effort: delete temp folders of crashed runs (older than an hour)."""
    now = time.time()
    for p in target.parent.glob(f".{target.name}.tmp-*"):
        try:
            if now - p.stat().st_mtime > _STALE_TMP_SECONDS:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass
