"""Pascal VOC xml -> YOLO layout (``detforge convert``), written by ``yolowrite.write_yolo``.

A VOC file describes one image::

    <annotation>
      <filename>000005.jpg</filename>
      <size><width>500</width><height>375</height><depth>3</depth></size>
      <object>
        <name>chair</name><difficult>0</difficult>
        <bndbox><xmin>263</xmin><ymin>211</ymin><xmax>324</xmax><ymax>339</ymax></bndbox>
      </object>
    </annotation>

Coordinates: the VOC devkit numbers pixels from 1 and includes both ends, so the box above
covers pixels 263..324, i.e. the continuous span [262, 324] (``one_based=True``). Tools that
write 0-based corner coordinates want ``one_based=False`` ([xmin, xmax] as written).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detforge.data.datayaml import IMAGE_SUFFIXES
from detforge.data.errors import DataError
from detforge.data.images import probe_image
from detforge.data.yolowrite import (
    ConvertReport,
    CopyMode,
    YoloImage,
    clip_boxes,
    safe_rel,
    write_yolo,
)

__all__ = ["VocObject", "read_voc", "voc_to_yolo"]

PathLike = str | os.PathLike[str]
VocObject = tuple[str, bool, tuple[float, float, float, float]]  # name, difficult, xyxy as written


def _text(node: ET.Element, path: str, where: str) -> str:
    child = node.find(path)
    if child is None or child.text is None or not child.text.strip():
        raise DataError(f"{where}: missing <{path}>")
    return child.text.strip()


def _number(node: ET.Element, path: str, where: str) -> float:
    text = _text(node, path, where)
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{where}: <{path}> is not a number: {text!r}") from None


def read_voc(xml_file: PathLike) -> tuple[str | None, tuple[int, int] | None, list[VocObject]]:
    """One VOC xml -> (filename or None, (width, height) or None if absent/zero, objects)."""
    f = Path(xml_file)
    try:
        root = ET.parse(f).getroot()
    except ET.ParseError as e:
        raise DataError(f"{f}: not valid XML: {e}") from None
    except OSError as e:
        raise DataError(f"{f}: cannot read: {e}") from None
    if root.tag != "annotation":
        raise DataError(f"{f}: root element is <{root.tag}>, expected <annotation>")
    name_node = root.find("filename")
    filename = name_node.text.strip() if name_node is not None and name_node.text else None
    size = None
    if root.find("size") is not None:
        w = _number(root, "size/width", str(f))
        h = _number(root, "size/height", str(f))
        size = (int(w), int(h)) if w > 0 and h > 0 else None  # some tools write 0: use the image
    objects: list[VocObject] = []
    for k, obj in enumerate(root.iter("object")):
        where = f"{f}: object {k}"
        name = _text(obj, "name", where)
        where = f"{where} ({name})"
        diff = obj.find("difficult")
        difficult = diff is not None and (diff.text or "0").strip() not in ("0", "", "false")
        box = tuple(_number(obj, f"bndbox/{t}", where) for t in ("xmin", "ymin", "xmax", "ymax"))
        objects.append((name, difficult, box))  # type: ignore[arg-type]
    return filename, size, objects


def _find_image(filename: str | None, xml_file: Path, images_dir: Path) -> Path:
    candidates = [images_dir / filename] if filename else []
    # files are often renamed after labelling: fall back to the xml's own stem
    candidates += [images_dir / (xml_file.stem + s) for s in sorted(IMAGE_SUFFIXES)]
    candidates += [images_dir / (xml_file.stem + s.upper()) for s in sorted(IMAGE_SUFFIXES)]
    for c in candidates:
        if c.is_file():
            return c
    raise DataError(f"{xml_file}: image {filename or xml_file.stem!r} not found in {images_dir}")


def voc_to_yolo(
    xml: PathLike | Sequence[PathLike],
    images_dir: PathLike,
    out_dir: PathLike,
    names: Sequence[str] | None = None,
    split: str = "train",
    keep_difficult: bool = True,
    one_based: bool = True,
    copy: CopyMode = "copy",
) -> ConvertReport:
    """Convert VOC xml files (a folder of ``*.xml`` or a list of files) into the YOLO layout.

    names: class names in class-id order; None takes every object name found, sorted. An
    object whose name is not in ``names`` is an error naming the file and object.
    keep_difficult: keep objects marked ``<difficult>1</difficult>`` (else skip and count).
    one_based: VOC devkit pixel convention (see the module docstring). Boxes are clipped to
    the image; the image size comes from ``<size>``, or from the image when absent or 0.
    """
    if isinstance(xml, str | os.PathLike):
        p = Path(xml)
        if p.is_dir():
            files = sorted(p.glob("*.xml"))
        elif p.is_file():
            files = [p]
        else:
            raise DataError(f"VOC annotations not found: {p}")
    else:
        files = [Path(x) for x in xml]
    if not files:
        raise DataError(f"no .xml files in {xml}")
    img_root = Path(images_dir)
    parsed: list[tuple[Path, Path, tuple[int, int], list[VocObject]]] = []
    for f in files:
        filename, size, objects = read_voc(f)
        src = _find_image(filename, f, img_root)
        if size is None:
            h, w = probe_image(src).shape
            size = (w, h)
        parsed.append((f, src, size, objects))
    all_names = sorted({o[0] for *_, objs in parsed for o in objs})
    class_names = list(names) if names is not None else all_names
    if not class_names:
        raise DataError(f"no objects in {len(files)} VOC files and no names given")
    class_of = {n: k for k, n in enumerate(class_names)}

    rep = ConvertReport(Path(out_dir), split)
    items = []
    shift = 1.0 if one_based else 0.0
    for f, src, (w, h), objects in parsed:
        rows: list[list[Any]] = []
        for k, (name, difficult, (x1, y1, x2, y2)) in enumerate(objects):
            if name not in class_of:
                raise DataError(f"{f}: object {k}: class {name!r} is not in names {class_names}")
            if difficult and not keep_difficult:
                rep.difficult_skipped += 1
                continue
            rows.append([class_of[name], x1 - shift, y1 - shift, x2, y2])
        b = np.array(rows, np.float64).reshape(-1, 5)
        xyxy, keep, clipped = clip_boxes(b[:, 1:], w, h)
        rep.clipped += clipped
        rep.degenerate_skipped += int((~keep).sum())
        boxes = np.concatenate([b[:, :1], xyxy], axis=1)[keep]
        rel = safe_rel(src.name, str(f))
        items.append(YoloImage(src, rel, w, h, boxes))
    return write_yolo(items, class_names, out_dir, split, copy, rep)
