"""COCO instances json as a data format: reading files, and ground truth built from labels.

Both the converters (``data/convert.py``) and the evaluator (``eval/cocojson.py``) use these, so
they live in the data layer. Written ground truth uses ``category_id = class index + 1`` and
unrounded floats.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..boxes import xyxy_to_ltwh_np

__all__ = ["COCOJsonError", "load_json", "coco_gt_from_labels"]


class COCOJsonError(ValueError):
    """A COCO json file or object is malformed; the message says where."""


def load_json(path: str | os.PathLike[str]) -> Any:
    """Read a json file, with errors that name the file (and the line for bad json)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"COCO json file not found: {p}")
    try:
        with p.open("rb") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        msg = f"{p} is not valid json: {e.msg} (line {e.lineno}, column {e.colno})"
        raise COCOJsonError(msg) from None


def as_float64(x: Any) -> np.ndarray:
    """numpy array / torch tensor -> float64 numpy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def coco_gt_from_labels(
    images: Sequence[dict], labels: Sequence[Any], names: Sequence[str]
) -> dict:
    """COCO instances dict from per-image labels.

    images: one ``dict(id, file_name, height, width)`` per image; labels: one (n, 5) array per
    image, ``[cls, x1, y1, x2, y2]`` in pixels; names: class names. category_id = cls + 1,
    annotation ids count from 1, area = width * height, iscrowd = 0.
    """
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} label arrays")
    anns = []
    for img, lab in zip(images, labels, strict=True):
        lab = as_float64(lab).reshape(-1, 5)
        box = xyxy_to_ltwh_np(lab[:, 1:5])
        area = box[:, 2] * box[:, 3]
        for c, bb, ar in zip(lab[:, 0].tolist(), box.tolist(), area.tolist(), strict=True):
            anns.append({"id": len(anns) + 1, "image_id": img["id"], "category_id": int(c) + 1,
                         "bbox": bb, "area": ar, "iscrowd": 0})  # fmt: skip
    cats = [{"id": i + 1, "name": str(n)} for i, n in enumerate(names)]
    return {"images": [dict(i) for i in images], "annotations": anns, "categories": cats}
