"""Image decoding and verification.

Decoding rules (``read_image``), all giving RGB uint8 (H, W, 3):

- EXIF orientation is applied by us, from the orientation tag PIL reads, on pixels that OpenCV
  decodes with ``IMREAD_IGNORE_ORIENTATION``. OpenCV also rotates by itself by default, but which
  formats it covers has changed between versions; doing it here keeps the decoded size equal to the
  size ``verify_image`` records (and that labels are normalised by) for every format and version.
- Grayscale is replicated to three channels (``keep_gray=True`` returns it as (H, W) instead, so
  a pipeline can work on one channel and replicate at the end).
- Alpha is dropped (the colour channels are kept as stored, not composited): detectors see the
  same pixels other YOLO tools give them, and no background colour is invented.
- 16-bit images are scaled to 8 bits by dropping the low byte (value >> 8), so the full 16-bit
  range maps to the full 8-bit range.
- Files OpenCV cannot decode (rare TIFF variants, palette tricks) fall back to PIL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps

from detforge.data.errors import DataError

__all__ = [
    "ImageInfo",
    "read_image",
    "decode_rgb",
    "to_rgb",
    "probe_image",
    "verify_image",
    "exif_orientation",
    "apply_orientation",
]

_EXIF_ORIENTATION = 0x0112
# decode straight to RGB where this OpenCV has the flag (>= 4.10) and save a colour conversion
_RGB_FLAG = getattr(cv2, "IMREAD_COLOR_RGB", None)


_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


@dataclass(frozen=True)
class ImageInfo:
    """Header facts of an image: ``shape`` (h, w) after EXIF orientation, the EXIF orientation
    (1..8) and whether it is stored as a single (gray) channel."""

    shape: tuple[int, int]
    orientation: int = 1
    gray: bool = False


def _info(im: Image.Image) -> ImageInfo:
    w, h = im.size
    orientation = exif_orientation(im)
    if orientation >= 5:  # orientations 5..8 swap width and height
        w, h = h, w
    return ImageInfo(shape=(h, w), orientation=orientation, gray=im.mode in _GRAY_MODES)


def probe_image(path: str | os.PathLike[str]) -> ImageInfo:
    """Read an image's header (no decoding, no verification); ``DataError`` if unreadable."""
    try:
        with Image.open(path) as im:
            return _info(im)
    except Exception as e:
        raise DataError(f"{os.fspath(path)}: cannot read image: {e}") from e


def exif_orientation(im: Image.Image) -> int:
    """EXIF orientation tag of an open PIL image (1..8; 1 when absent or invalid)."""
    try:
        value = int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # malformed EXIF blocks must not make a readable image unusable
        return 1
    return value if 1 <= value <= 8 else 1


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels (H, W, C) into the displayed view for an EXIF orientation 1..8."""
    if orientation == 2:
        return cv2.flip(img, 1)
    if orientation == 3:
        return cv2.rotate(img, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(img, 0)
    if orientation == 5:
        return cv2.transpose(img)
    if orientation == 6:
        return cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.flip(cv2.transpose(img), -1)
    if orientation == 8:
        return cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return img


def _read_with_pil(path: str) -> np.ndarray:
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            a = np.asarray(im, dtype=np.uint32) >> 8
            return np.repeat(a.clip(0, 255).astype(np.uint8)[..., None], 3, axis=2)
        return np.asarray(im.convert("RGB"))


def read_image(
    path: str | os.PathLike[str], info: ImageInfo | None = None, keep_gray: bool = False
) -> np.ndarray:
    """Decode an image file to RGB uint8 (H, W, 3), EXIF orientation applied.

    info: the image's header facts if already known (``verify_image``); None reads them.
    keep_gray: return a single-channel image as uint8 (H, W) (R = G = B) instead.
    Raises ``DataError`` naming the file if it cannot be decoded.
    """
    path = os.fspath(path)
    info = info if info is not None else probe_image(path)
    buf = np.fromfile(path, dtype=np.uint8)  # fromfile + imdecode also handles non-ASCII paths
    if info.gray:
        mode = cv2.IMREAD_GRAYSCALE
    else:
        mode = _RGB_FLAG if _RGB_FLAG is not None else cv2.IMREAD_COLOR
    img = cv2.imdecode(buf, mode | cv2.IMREAD_IGNORE_ORIENTATION) if buf.size else None
    if img is None:
        try:
            img = _read_with_pil(path)
        except Exception as e:
            raise DataError(f"{path}: cannot decode image: {e}") from e
    else:
        if not info.gray and _RGB_FLAG is None:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        img = apply_orientation(img, info.orientation)
    if img.ndim == 2 and not keep_gray:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and keep_gray and info.gray:
        img = np.ascontiguousarray(img[:, :, 0])
    return img


def decode_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode to RGB uint8 (H, W, 3) with OpenCV alone (it applies EXIF orientation itself):
    no header probe, for many small images of a checked dataset (classification crops). Raises
    ``DataError`` naming the file if it cannot be decoded."""
    path = os.fspath(path)
    buf = np.fromfile(path, dtype=np.uint8)
    img = (
        cv2.imdecode(buf, _RGB_FLAG if _RGB_FLAG is not None else cv2.IMREAD_COLOR)
        if buf.size
        else None
    )
    if img is None:
        raise DataError(f"{path}: cannot decode image")
    return img if _RGB_FLAG is not None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def to_rgb(img: np.ndarray) -> np.ndarray:
    """A uint8 image array as RGB (H, W, 3), by the same rules as ``read_image``: gray (H, W) or
    (H, W, 1) replicated to three channels, RGBA (H, W, 4) without its alpha; RGB as it is.
    Raises ``ValueError`` naming the shape or dtype otherwise."""
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image array, got dtype {img.dtype}")
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim == 3 and img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    if img.ndim == 3 and img.shape[2] == 4:
        return np.ascontiguousarray(img[:, :, :3])
    if img.ndim == 3 and img.shape[2] == 3:
        return img
    raise ValueError(
        f"expected an image array (H, W), (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA, "
        f"got shape {img.shape}"
    )


def _jpeg_complete(path: str) -> bool:
    # A truncated JPEG lacks its end-of-image marker FFD9. Some writers pad the file after it,
    # so trailing NUL / whitespace bytes are ignored.
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 64))
        tail = f.read().rstrip(b"\x00\r\n\t ")
    return tail.endswith(b"\xff\xd9")


def verify_image(path: str | os.PathLike[str]) -> ImageInfo:
    """Check that an image file is complete and readable; return its header facts.

    Raises ``DataError`` naming the file for a missing, unreadable or truncated image.
    """
    path = os.fspath(path)
    try:
        # verify() must come straight after open (reading EXIF first breaks it for PNG),
        # and leaves the image unusable, hence a second open for the header facts
        with Image.open(path) as im:
            fmt = im.format
            im.verify()
        with Image.open(path) as im:
            info = _info(im)
    except FileNotFoundError as e:
        raise DataError(f"{path}: image not found") from e
    except Exception as e:
        raise DataError(f"{path}: unreadable image: {e}") from e
    if fmt == "JPEG" and not _jpeg_complete(path):
        raise DataError(f"{path}: truncated JPEG (no end-of-image marker)")
    if min(info.shape) < 1:
        raise DataError(f"{path}: empty image {info.shape[1]}x{info.shape[0]}")
    return info
