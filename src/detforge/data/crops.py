"""A detection dataset -> an image-classification dataset of its object crops.

``detforge convert to=classify data=det.yaml out=DIR [pad=0.1] [min_size=8]`` writes
``DIR/<split>/<class name>/<image stem>_<box index>.png`` for every box of every split the
data.yaml has, a ``DIR/data.yaml`` (``task: classify``, the same class names, one folder per
split) and ``DIR/crops.csv`` (crop file, split, class, source image, box index and the crop
rectangle in source pixels) so every crop can be traced back to its box.

A crop is the box grown by ``pad`` times its width (left and right) and height (top and
bottom), clipped to the image, in whole pixels: ``floor`` of the left/top edge, ``ceil`` of the
right/bottom edge. Boxes whose shorter side is under ``min_size`` source pixels are skipped and
counted. Crops are written as PNG (lossless: the crop holds the source pixels exactly).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from ..utils.atomic import atomic_write, write_text_atomic
from .dataset import YoloDataset, xywhn_to_xyxy
from .datayaml import load_data_yaml
from .images import read_image

__all__ = ["CropReport", "crop_rect", "detection_to_classify"]


@dataclass
class CropReport:
    out: Path
    crops: Counter = field(default_factory=Counter)  # (split, class name) -> crops written
    skipped_small: Counter = field(default_factory=Counter)  # split -> boxes under min_size

    def summary(self) -> str:
        splits = sorted({s for s, _ in self.crops} | set(self.skipped_small))
        parts = []
        for s in splits:
            n = sum(v for (sp, _), v in self.crops.items() if sp == s)
            parts.append(f"{s}: {n} crops ({self.skipped_small[s]} boxes under min_size skipped)")
        return "; ".join(parts) + f" -> {self.out}"


def crop_rect(box: np.ndarray, width: int, height: int, pad: float) -> tuple[int, int, int, int]:
    """Pixel rectangle (left, top, right, bottom; right/bottom exclusive) of an xyxy ``box`` in
    source pixels grown by ``pad`` of its size on each side and clipped to the image."""
    x1, y1, x2, y2 = (float(v) for v in box)
    dx, dy = pad * (x2 - x1), pad * (y2 - y1)
    left, top = max(0, math.floor(x1 - dx)), max(0, math.floor(y1 - dy))
    right, bottom = min(width, math.ceil(x2 + dx)), min(height, math.ceil(y2 + dy))
    return left, top, right, bottom


def _png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def detection_to_classify(
    data_yaml: str | os.PathLike, out: str | os.PathLike, pad: float = 0.1, min_size: int = 8
) -> CropReport:
    """Write the object crops of every split of ``data_yaml`` under ``out``; see the module doc."""
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    if min_size < 1:
        raise ValueError(f"min_size must be >= 1, got {min_size}")
    spec = load_data_yaml(data_yaml)
    out = Path(out)
    names = list(spec.names)
    bad = {n for n in names if names.count(n) > 1 or n in ("", ".", "..") or "/" in n}
    if bad:
        raise ValueError(f"{data_yaml}: class names {sorted(bad)} cannot be folder names")
    report = CropReport(out)
    rows = [["crop", "split", "class", "source", "box", "left", "top", "right", "bottom"]]
    splits = [s for s in ("train", "val", "test") if spec.split(s)]
    for split in splits:
        ds = YoloDataset.from_spec(spec, split, augment=False, cache=False)
        for name in names:
            (out / split / name).mkdir(parents=True, exist_ok=True)
        for i, path in enumerate(ds.image_files):
            labels = ds.labels[i]
            if not len(labels):
                continue
            h0, w0 = ds.shapes[i]
            img = read_image(path)
            boxes = xywhn_to_xyxy(labels, w0, h0)[:, 1:]
            for j, (cls, box) in enumerate(zip(labels[:, 0].astype(int), boxes, strict=True)):
                if min(box[2] - box[0], box[3] - box[1]) < min_size:
                    report.skipped_small[split] += 1
                    continue
                left, top, right, bottom = crop_rect(box, w0, h0, pad)
                name = f"{Path(path).stem}_{j}.png"
                target = out / split / names[cls] / name
                data = _png_bytes(np.ascontiguousarray(img[top:bottom, left:right]))
                atomic_write(target, lambda f, data=data: f.write(data))
                report.crops[(split, names[cls])] += 1
                rows.append([str(target.relative_to(out)), split, names[cls], str(path), j,
                             left, top, right, bottom])  # fmt: skip
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    write_text_atomic(out / "crops.csv", buf.getvalue())
    meta = {"task": "classify", "path": ".", **{s: s for s in splits}, "names": names}
    write_text_atomic(out / "data.yaml", yaml.safe_dump(meta, sort_keys=False))
    return report
