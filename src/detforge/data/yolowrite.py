"""Writing the YOLO layout, shared by the format converters (``convert.py``, ``voc.py``).

The layout written is ``out_dir/images/<split>/<file>``, ``out_dir/labels/<split>/<stem>.txt``
(one ``class cx cy w h`` line per box, normalised, up to 8 decimals) and ``out_dir/data.yaml``
listing every split present under ``out_dir/images``. Every image gets a label file, empty
when it has no boxes.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import yaml

from detforge.data.datayaml import IMAGE_SUFFIXES
from detforge.data.errors import DataError

__all__ = [
    "CopyMode",
    "ConvertReport",
    "YoloImage",
    "clip_boxes",
    "label_text",
    "safe_rel",
    "write_data_yaml",
    "write_yolo",
]

PathLike = str | os.PathLike[str]
CopyMode = Literal["copy", "hardlink", "symlink"]


@dataclass
class YoloImage:
    """One image to write: source file, path under ``images/<split>/``, size and boxes.

    boxes: (n, 5) float64 ``[cls, x1, y1, x2, y2]`` in pixels, already clipped to the image.
    """

    src: Path
    rel: Path
    width: int
    height: int
    boxes: np.ndarray


@dataclass
class ConvertReport:
    """What a conversion wrote and what it left out (counts of boxes unless said).

    messages: warnings about the input; notes: what the user should know about the output (a
    data.yaml whose val split is its train split, and how to make a real one).
    """

    out_dir: Path
    split: str
    images: int = 0
    boxes: int = 0
    images_without_boxes: int = 0
    crowd_skipped: int = 0
    difficult_skipped: int = 0
    degenerate_skipped: int = 0
    clipped: int = 0
    messages: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def data_yaml(self) -> Path:
        return self.out_dir / "data.yaml"

    def summary(self) -> str:
        parts = [f"{self.split}: {self.images} images, {self.boxes} boxes",
                 f"{self.images_without_boxes} images without boxes",
                 f"{self.clipped} boxes clipped to the image"]  # fmt: skip
        for label, n in (("crowd", self.crowd_skipped), ("difficult", self.difficult_skipped),
                         ("empty after clipping", self.degenerate_skipped)):  # fmt: skip
            if n:
                parts.append(f"{n} {label} boxes skipped")
        if self.messages:
            parts.append(f"{len(self.messages)} warnings (see messages)")
        return "\n".join([", ".join(parts) + f" -> {self.out_dir}", *self.notes])


def clip_boxes(xyxy: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Clip (n, 4) pixel boxes to the image; return (boxes, keep mask of non-empty, clipped)."""
    out = xyxy.copy()
    np.clip(out[:, 0::2], 0, width, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, height, out=out[:, 1::2])
    changed = int((out != xyxy).any(axis=1).sum())
    keep = (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])
    return out, keep, changed


def _num(v: float) -> str:
    # 8 decimals: far below a pixel for any image size, exact enough for a round trip
    return f"{v:.8f}".rstrip("0").rstrip(".") or "0"


def label_text(boxes: np.ndarray, width: int, height: int) -> str:
    """(n, 5) ``[cls, x1, y1, x2, y2]`` pixels -> YOLO label file text."""
    lines = []
    for c, x1, y1, x2, y2 in np.asarray(boxes, np.float64).reshape(-1, 5).tolist():
        vals = ((x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width,
                (y2 - y1) / height)  # fmt: skip
        lines.append(f"{int(c)} " + " ".join(_num(v) for v in vals))
    return "".join(line + "\n" for line in lines)


def safe_rel(name: str, where: str) -> Path:
    """A relative path inside the output folder for an image name from an annotation file."""
    p = Path(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts:
        p = Path(p.name)  # never write outside the output folder
    if not p.name or p.suffix.lower() not in IMAGE_SUFFIXES:
        raise DataError(f"{where}: {name!r} is not an image file name ({sorted(IMAGE_SUFFIXES)})")
    return p


def _place(src: Path, dst: Path, mode: CopyMode) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    if mode == "symlink":
        dst.symlink_to(src.resolve())
        return
    if mode == "hardlink":
        try:
            os.link(src, dst)
            return
        except OSError:  # other file system: fall back to a copy
            pass
    shutil.copy2(src, dst)


def _existing_names(out_dir: Path) -> list[str] | None:
    f = out_dir / "data.yaml"
    if not f.is_file():
        return None
    doc = yaml.safe_load(f.read_text(encoding="utf-8-sig")) or {}
    names = doc.get("names")
    return [str(names[k]) for k in sorted(names)] if isinstance(names, dict) else names


def write_data_yaml(
    out_dir: Path,
    names: Sequence[str],
    sources: dict[str, str] | None = None,
    tool: str = "convert",
) -> Path:
    """Write ``out_dir/data.yaml`` with ``path: .``, the split sources and the class names.

    sources: {split: folder or list, relative to out_dir}; None: every ``images/<split>``
    folder present. A missing train or val split points at the other one (a data.yaml needs
    both) and says so; ``split_dataset`` makes a real split.
    """
    if sources is None:
        found = [s for s in ("train", "val", "test") if (out_dir / "images" / s).is_dir()]
        sources = {s: f"images/{s}" for s in found}
    lines = [f"# written by detforge {tool}", "path: ."]
    lines += [f"{s}: {src}" for s, src in sources.items()]
    for needed in ("train", "val"):
        if needed not in sources and sources:
            first = next(iter(sources))
            lines.append(f"{needed}: {sources[first]}  # no {needed} split: same as {first}")
    lines += [f"nc: {len(names)}", "names:"]
    # a json string is a valid YAML double-quoted scalar: any class name survives
    lines += [f"  {i}: {json.dumps(str(n), ensure_ascii=False)}" for i, n in enumerate(names)]
    out = out_dir / "data.yaml"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def write_yolo(
    items: Sequence[YoloImage],
    names: Sequence[str],
    out_dir: PathLike,
    split: str,
    copy: CopyMode = "copy",
    report: ConvertReport | None = None,
) -> ConvertReport:
    """Write images, label files and data.yaml of one split (see the module docstring).

    Raises ``DataError`` if ``out_dir/data.yaml`` already lists other class names, or two images
    would land on the same file.
    """
    out = Path(out_dir)
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    old = _existing_names(out)
    if old is not None and list(old) != list(names):
        raise DataError(
            f"{out / 'data.yaml'} lists classes {old}, this conversion has {list(names)}: "
            "convert into another folder"
        )
    seen: dict[Path, Path] = {}
    for it in items:
        key = it.rel.with_suffix("")
        if key in seen:
            raise DataError(f"{it.src} and {seen[key]} would both be written as {it.rel}")
        seen[key] = it.src
    rep = report or ConvertReport(out, split)
    for it in items:
        _place(it.src, out / "images" / split / it.rel, copy)
        lab = out / "labels" / split / it.rel.with_suffix(".txt")
        lab.parent.mkdir(parents=True, exist_ok=True)
        lab.write_text(label_text(it.boxes, it.width, it.height), encoding="utf-8")
        rep.images += 1
        rep.boxes += len(it.boxes)
        rep.images_without_boxes += len(it.boxes) == 0
    write_data_yaml(out, names)
    present = [s for s in ("train", "val", "test") if (out / "images" / s).is_dir()]
    for needed in ("train", "val"):
        if present and needed not in present:
            rep.notes.append(
                f"note: all {rep.images} images went to the {split} split (split=train|val|test "
                f"chooses it); {out / 'data.yaml'} has no {needed} split and uses {present[0]} "
                f"for it. Convert another split into {out}, or hold out part of these images: "
                f"detforge split src={out / 'images' / split} out=<new folder> val=0.2"
            )
    return rep
