"""Validation of YOLO label files and their images.

Label line rules (``parse_labels``); a line breaking one is dropped with a message
``<label file>:<line>: <problem>``:

- ``class cx cy w h`` (5 columns, normalised to the image) is a box. A line with an odd number of
  columns >= 7 (``class x1 y1 x2 y2 x3 y3 ...``) is a polygon segment and is replaced by the
  bounding box of its points. Any other column count is malformed, as is a non-numeric or
  non-finite value. Blank lines are ignored.
- The class id must be an integer (``3`` or ``3.0``) in ``0..nc-1``.
- Box corners (or polygon points) must lie in [0, 1] within ``COORD_TOL`` = 1e-3 (under a pixel
  for images up to 1000 px: labels written with 3-6 decimals overshoot the border by rounding);
  values within the tolerance are clipped to [0, 1], values beyond it drop the line.
- A box with zero (or negative) width or height after clipping is dropped.
- An exact repeat of an earlier line's box and class is dropped as a duplicate.

A missing or empty label file means an image without objects. Images are checked by
``verify_image``; a missing, unreadable or truncated image is skipped with a message naming it
(and the ``.txt`` list file and line it came from).
"""

from __future__ import annotations

import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from detforge.data.datayaml import ImageEntry, label_path_for
from detforge.data.errors import DataError
from detforge.data.images import verify_image

__all__ = ["COORD_TOL", "ImageRecord", "parse_labels", "validate_images", "report"]

COORD_TOL = 1e-3
_LOGGER = logging.getLogger("detforge.data")
_MAX_LOGGED = 10  # individual warnings logged per split; all are kept in ``warnings``


@dataclass
class ImageRecord:
    """Validation result of one image.

    labels: (n, 5) float32 [cls, cx, cy, w, h] normalised; shape: (h0, w0) after EXIF orientation;
    orientation: EXIF orientation; gray: stored as one channel; skip: why the image is unusable
    (None if usable); messages: dropped label lines.
    """

    path: str
    shape: tuple[int, int] = (0, 0)
    orientation: int = 1
    gray: bool = False
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0, 5), np.float32))
    messages: list[str] = field(default_factory=list)
    skip: str | None = None


def _parse_line(parts: list[str], nc: int) -> tuple[list[float] | None, str]:
    """One label line -> ([cls, cx, cy, w, h], '') or (None, problem)."""
    n = len(parts)
    if n != 5 and (n < 7 or n % 2 == 0):
        return None, (
            f"expected 5 columns (class cx cy w h) or an odd number >= 7 "
            f"(class x1 y1 x2 y2 x3 y3 ...), got {n}"
        )
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        bad = next(p for p in parts if not _is_float(p))
        return None, f"non-numeric value {bad!r}"
    if not all(math.isfinite(v) for v in vals):
        return None, "non-finite value"
    c = vals[0]
    if c != int(c):
        return None, f"class id {parts[0]!r} is not an integer"
    if not 0 <= c < nc:
        return None, f"class id {int(c)} out of range 0..{nc - 1}"
    if n == 5:
        cx, cy, w, h = vals[1:]
        x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    else:
        xs, ys = vals[1::2], vals[2::2]
        x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
    if min(x1, y1) < -COORD_TOL or max(x2, y2) > 1 + COORD_TOL:
        return None, (
            f"coordinates outside [0, 1]: box x1={x1:.6g} y1={y1:.6g} x2={x2:.6g} y2={y2:.6g}"
        )
    x1, y1 = max(x1, 0.0), max(y1, 0.0)
    x2, y2 = min(x2, 1.0), min(y2, 1.0)
    if x2 <= x1 or y2 <= y1:
        return None, f"zero-area box (w={x2 - x1:.6g}, h={y2 - y1:.6g})"
    return [c, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], ""


def _is_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def parse_labels(path: str | os.PathLike[str], nc: int) -> tuple[np.ndarray, list[str]]:
    """Read one label file -> ((n, 5) float32 [cls, cx, cy, w, h] normalised, messages)."""
    try:
        # utf-8-sig: a byte-order mark (Windows editors write one) is not part of line 1
        with open(path, encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return np.zeros((0, 5), np.float32), []
    except (OSError, UnicodeDecodeError) as e:
        return np.zeros((0, 5), np.float32), [f"{path}: unreadable label file: {e}"]
    rows: list[list[float]] = []
    seen: dict[tuple[float, ...], int] = {}
    messages = []
    for lineno, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        row, problem = _parse_line(parts, nc)
        if row is not None:
            key = tuple(row)
            if key in seen:
                row, problem = None, f"duplicate of line {seen[key]}"
            else:
                seen[key] = lineno
        if row is None:
            messages.append(f"{path}:{lineno}: {problem}")
        else:
            rows.append(row)
    labels = np.array(rows, dtype=np.float32).reshape(-1, 5)
    return labels, messages


def _validate_one(entry: ImageEntry, nc: int) -> ImageRecord:
    rec = ImageRecord(path=str(entry.path))
    try:
        info = verify_image(entry.path)
    except DataError as e:
        rec.skip = f"{entry.where}: {e}" if entry.where else str(e)
        return rec
    rec.shape, rec.orientation, rec.gray = info.shape, info.orientation, info.gray
    rec.labels, rec.messages = parse_labels(label_path_for(entry.path), nc)
    return rec


def validate_images(
    entries: list[ImageEntry], nc: int, threads: int | None = None
) -> list[ImageRecord]:
    """Validate every image and its labels, in order; runs in a thread pool (I/O bound)."""
    threads = threads or min(16, (os.cpu_count() or 1) * 4)
    if len(entries) < 32 or threads <= 1:
        return [_validate_one(e, nc) for e in entries]
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="detforge-validate") as ex:
        return list(ex.map(_validate_one, entries, [nc] * len(entries), chunksize=16))


def summary(records: list[ImageRecord], split: str) -> str:
    """One line: ``train: 406 images, 3554 boxes, 3 without boxes, 0 skipped, 0 label warnings``."""
    used = [r for r in records if r.skip is None]
    boxes = sum(len(r.labels) for r in used)
    empty = sum(len(r.labels) == 0 for r in used)
    skipped = len(records) - len(used)
    warn = sum(len(r.messages) for r in records)
    return (
        f"{split}: {len(used)} images, {boxes} boxes, {empty} without boxes, "
        f"{skipped} skipped, {warn} label warnings"
    )


def report(records: list[ImageRecord], split: str, strict: bool) -> list[str]:
    """Raise (strict) or log the problems found, log the summary; return all messages.

    Raises ``DataError`` with the first problem (file and line) when ``strict``, or when no
    usable image is left.
    """
    messages = [r.skip for r in records if r.skip] + [m for r in records for m in r.messages]
    if strict and messages:
        more = f" (and {len(messages) - 1} more problems)" if len(messages) > 1 else ""
        raise DataError(f"{split}: {messages[0]}{more}")
    for m in messages[:_MAX_LOGGED]:
        _LOGGER.warning("%s: %s", split, m)
    if len(messages) > _MAX_LOGGED:
        _LOGGER.warning(
            "%s: %d more data warnings (see dataset.warnings)", split, len(messages) - _MAX_LOGGED
        )
    _LOGGER.info(summary(records, split))
    if not any(r.skip is None for r in records):
        where = f" (first problem: {messages[0]})" if messages else ""
        raise DataError(f"{split}: no usable images{where}")
    return messages
