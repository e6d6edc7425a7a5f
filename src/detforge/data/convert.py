"""Format converters (``detforge convert``): COCO json -> YOLO, Pascal VOC xml -> YOLO (from
:mod:`detforge.data.voc`) and YOLO -> COCO json.

The YOLO layout written is described in :mod:`detforge.data.yolowrite`. Converters read and
check all input first and write only when it is sound; errors name the file and the entry
(``annotations[12]``) or line to fix.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from detforge.data.cocofmt import COCOJsonError, coco_gt_from_labels, load_json
from detforge.data.dataset import YoloDataset
from detforge.data.datayaml import load_data_yaml
from detforge.data.errors import DataError
from detforge.data.images import probe_image
from detforge.data.voc import voc_to_yolo
from detforge.data.yolowrite import (
    ConvertReport,
    CopyMode,
    YoloImage,
    clip_boxes,
    safe_rel,
    write_yolo,
)
from detforge.utils.atomic import write_json_atomic

__all__ = ["ConvertReport", "coco_to_yolo", "voc_to_yolo", "yolo_to_coco"]

PathLike = str | os.PathLike[str]


def _need(entry: Any, key: str, where: str) -> Any:
    if not isinstance(entry, dict):
        raise DataError(f"{where} is not an object")
    if key not in entry:
        raise DataError(f"{where} has no '{key}'")
    return entry[key]


def _image_size(entry: dict, src: Path, where: str, messages: list[str]) -> tuple[int, int]:
    """Size from the json (the boxes are in its pixels); the file's header when absent."""
    header = probe_image(src).shape
    w, h = entry.get("width"), entry.get("height")
    if w is None or h is None:
        return header[1], header[0]
    if isinstance(w, bool) or not isinstance(w, int | float) or not isinstance(h, int | float):
        raise DataError(f"{where}: width/height must be numbers, got {w!r}, {h!r}")
    if w <= 0 or h <= 0:
        raise DataError(f"{where}: width/height must be positive, got {w}x{h}")
    if (int(h), int(w)) != header:
        messages.append(f"{where}: json says {w}x{h}, the image is {header[1]}x{header[0]}")
    return int(w), int(h)


def coco_to_yolo(
    json_path: PathLike,
    images_dir: PathLike,
    out_dir: PathLike,
    split: str = "train",
    copy: CopyMode = "copy",
) -> ConvertReport:
    """Convert a COCO instances json (and its images) into the YOLO layout, one split.

    Categories map to classes 0..K-1 in sorted id order, names kept. Crowd annotations
    (``iscrowd: 1``) are skipped and counted; boxes are clipped to the image and dropped (and
    counted) if nothing is left; images without annotations get empty label files. Images are
    found as ``images_dir/file_name`` and copied (or hard/symbolic linked, ``copy``).
    """
    src_json, img_root = Path(json_path), Path(images_dir)
    try:
        doc = load_json(src_json)
    except COCOJsonError as e:  # one error type for the CLI to report
        raise DataError(str(e)) from None
    if not isinstance(doc, dict):
        raise DataError(f"{src_json}: expected a COCO object with images/annotations/categories")
    lists = {}
    for key in ("images", "annotations", "categories"):
        value = doc.get(key)
        if not isinstance(value, list):
            raise DataError(f"{src_json}: '{key}' must be a list, got {type(value).__name__}")
        lists[key] = value

    cats: dict[Any, str] = {}
    for i, c in enumerate(lists["categories"]):
        where = f"{src_json}: categories[{i}]"
        cid, name = _need(c, "id", where), _need(c, "name", where)
        if isinstance(cid, bool) or not isinstance(cid, int):
            raise DataError(f"{where}: id must be an integer, got {cid!r}")
        if cid in cats:
            raise DataError(f"{where}: category id {cid} is listed twice")
        cats[cid] = str(name)
    if not cats:
        raise DataError(f"{src_json}: no categories")
    cat_ids = sorted(cats)
    class_of = {cid: k for k, cid in enumerate(cat_ids)}

    rep = ConvertReport(Path(out_dir), split)
    images: dict[Any, YoloImage] = {}
    for i, im in enumerate(lists["images"]):
        where = f"{src_json}: images[{i}]"
        iid, fname = _need(im, "id", where), _need(im, "file_name", where)
        if not isinstance(iid, int | str) or isinstance(iid, bool) or iid in images:
            raise DataError(f"{where}: id {iid!r} is not a new int or string id")
        rel = safe_rel(str(fname), where)
        src = img_root / str(fname)
        if not src.is_file():
            raise DataError(f"{where}: image {fname!r} not found in {img_root}")
        w, h = _image_size(im, src, where, rep.messages)
        images[iid] = YoloImage(src, rel, w, h, np.zeros((0, 5)))

    rows: dict[Any, list[list[float]]] = {iid: [] for iid in images}
    for i, a in enumerate(lists["annotations"]):
        where = f"{src_json}: annotations[{i}]"
        iid, cid = _need(a, "image_id", where), _need(a, "category_id", where)
        bbox = _need(a, "bbox", where)
        if iid not in images:
            raise DataError(f"{where}: image_id {iid!r} is not in 'images'")
        if cid not in class_of:
            raise DataError(f"{where}: category_id {cid!r} is not in 'categories'")
        ok = isinstance(bbox, list) and len(bbox) == 4
        if not ok or not all(isinstance(v, int | float) and math.isfinite(v) for v in bbox):
            raise DataError(f"{where}: bbox must be 4 finite numbers [x, y, w, h], got {bbox!r}")
        if a.get("iscrowd", 0):
            rep.crowd_skipped += 1
            continue
        x, y, bw, bh = (float(v) for v in bbox)
        rows[iid].append([class_of[cid], x, y, x + bw, y + bh])

    for iid, it in images.items():
        b = np.array(rows[iid], np.float64).reshape(-1, 5)
        xyxy, keep, clipped = clip_boxes(b[:, 1:], it.width, it.height)
        rep.clipped += clipped
        rep.degenerate_skipped += int((~keep).sum())
        it.boxes = np.concatenate([b[:, :1], xyxy], axis=1)[keep]
    return write_yolo(list(images.values()), [cats[c] for c in cat_ids], out_dir, split, copy, rep)


def yolo_to_coco(
    data_yaml: PathLike,
    split: str,
    out_json: PathLike,
    cache_dir: PathLike | None = None,
) -> dict:
    """Write the ground truth of one split of a YOLO dataset as COCO instances json.

    Same ids as the run export (``report/run_report.py``): image id = index of the image in the
    sorted, validated split, category_id = class + 1, boxes ``[x, y, w, h]`` in original pixels
    unrounded. ``file_name`` is the path relative to the folder holding all the split's images
    (for a flat folder: the file name), so ``coco_to_yolo(out_json, that folder, ...)`` gives
    the labels back. Returns the written dict.
    """
    spec = load_data_yaml(data_yaml)
    ds = YoloDataset.from_spec(spec, split, cache_dir=cache_dir)
    base = Path(os.path.commonpath([str(Path(p).parent) for p in ds.image_files]))
    images, labels = [], []
    for i, (path, lab) in enumerate(zip(ds.image_files, ds.labels, strict=True)):
        h0, w0 = ds.shapes[i]
        rel = Path(path).relative_to(base).as_posix()
        images.append({"id": i, "file_name": rel, "height": int(h0), "width": int(w0)})
        lab = np.asarray(lab, np.float64).reshape(-1, 5)
        # the same float64 arithmetic as eval.validator.ground_truth_xyxy
        cx, cy, w, h = lab[:, 1] * w0, lab[:, 2] * h0, lab[:, 3] * w0, lab[:, 4] * h0
        xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        labels.append(np.concatenate([lab[:, :1], xyxy], axis=1))
    gt = coco_gt_from_labels(images, labels, ds.names)
    write_json_atomic(out_json, gt)
    return gt
