"""Deterministic train/val split of a flat folder of images and YOLO labels (``detforge split``).

Stratified by class: every image is filed under the rarest class it holds (fewest boxes over
the whole folder; images without boxes form their own group), and each group gives its share
of images to val. So a class with few images still lands in both splits: a group of two or
more images gives at least one to val and keeps at least one for train; afterwards, a class
still absent from val is given one image that can be moved without taking a class out of
train. The result depends only on the file names, their labels and ``seed``.
"""

from __future__ import annotations

import os
import shutil
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import yaml

from detforge.data.datayaml import label_path_for, list_images, parse_names
from detforge.data.errors import DataError
from detforge.data.yolowrite import write_data_yaml

__all__ = ["SplitResult", "read_classes", "split_dataset"]

PathLike = str | os.PathLike[str]


@dataclass
class SplitResult:
    """The split: image paths of each part (sorted), the data.yaml written, the class names
    and where they came from (``names=``, the source's data.yaml or classes.txt)."""

    train: list[Path]
    val: list[Path]
    data_yaml: Path
    names: list[str]
    names_from: str = "names="


def read_classes(label_file: Path) -> list[int]:
    """Class ids of a YOLO label file (missing file: none); errors name the file and line."""
    if not label_file.is_file():
        return []
    out = []
    text = label_file.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of line 1
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            c = float(parts[0])
        except ValueError:
            c = -1.0
        if c < 0 or c != int(c):
            raise DataError(f"{label_file}:{lineno}: class id {parts[0]!r} is not an integer >= 0")
        out.append(int(c))
    return out


def _yaml_names(f: Path) -> list[str] | None:
    """Class names of a data.yaml (None when it has none); errors name the file."""
    try:
        doc = yaml.safe_load(f.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise DataError(f"{f}: cannot read the class names: {e}") from None
    if not isinstance(doc, dict) or doc.get("names") is None:
        return None
    return parse_names(doc["names"], f)


def _names_for(src: Path, names: Sequence[str] | None, max_class: int) -> tuple[list[str], str]:
    """(class names, where they came from): ``names``, else the nearest data.yaml with names or
    LabelImg's classes.txt in ``src`` or up to two folders above it (``ds/images/train`` ->
    ``ds/data.yaml``), else ``class0..``."""
    found: list[str] | None = None
    origin = "names="
    if names is not None:
        found = list(names)
    else:
        for folder in (src, src.parent, src.parent.parent):
            for f in (folder / "data.yaml", folder / "classes.txt"):
                if not f.is_file():
                    continue
                if f.suffix == ".yaml":
                    found = _yaml_names(f)
                else:
                    text = f.read_text(encoding="utf-8-sig")
                    found = [s.strip() for s in text.splitlines() if s.strip()]
                if found:
                    origin = str(f)
                    break
            if found:
                break
    if not found:
        return [f"class{k}" for k in range(max_class + 1)], "none found: class0.."
    if max_class >= len(found):
        raise DataError(
            f"{src}: labels use class {max_class} but only {len(found)} names ({origin})"
        )
    return found, origin


def _quotas(sizes: list[int], fraction: float) -> list[int]:
    """Val images per group: largest remainders of ``fraction * size`` summing to the rounded
    total, then at least one (and at most size - 1) for groups of two or more."""
    raw = [fraction * n for n in sizes]
    q = [int(r) for r in raw]
    extra = round(fraction * sum(sizes)) - sum(q)
    # ties go to the larger group, then the earlier one: deterministic
    by_rem = sorted(range(len(sizes)), key=lambda g: (-(raw[g] - q[g]), -sizes[g], g))
    for g in by_rem[: max(0, extra)]:
        q[g] += 1
    return [min(max(qg, 1), n - 1) if n >= 2 else 0 for qg, n in zip(q, sizes, strict=True)]


def split_dataset(
    src_images_dir: PathLike,
    out_dir: PathLike,
    val_fraction: float = 0.2,
    seed: int = 0,
    stratify: bool = True,
    names: Sequence[str] | None = None,
    layout: Literal["lists", "copy"] = "lists",
) -> SplitResult:
    """Split the images under ``src_images_dir`` into train and val.

    Labels are found as for training (``labels/`` beside an ``images/`` folder, else next to
    each image). names: class names; None takes the names of the nearest ``data.yaml`` or
    ``classes.txt`` in the folder or up to two levels above it, else ``class0..``. layout
    ``lists``: ``out_dir/train.txt`` and ``val.txt`` (image paths relative to ``out_dir``) and
    a data.yaml using them; ``copy``: ``out_dir/images/{train,val}`` and
    ``out_dir/labels/{train,val}``. Same inputs and seed -> same split.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if layout not in ("lists", "copy"):
        raise ValueError(f"layout must be 'lists' or 'copy', got {layout!r}")
    src, out = Path(src_images_dir), Path(out_dir)
    if not src.is_dir():
        raise DataError(f"not a folder: {src}")
    images = [e.path for e in list_images(src)]
    if len(images) < 2:
        raise DataError(f"{src}: need at least 2 images to split, found {len(images)}")
    classes = [read_classes(label_path_for(p)) for p in images]
    max_class = max((max(c) for c in classes if c), default=-1)
    class_names, names_from = _names_for(src, names, max_class)
    counts = np.bincount([c for cs in classes for c in cs], minlength=len(class_names))

    groups: dict[int, list[int]] = defaultdict(list)
    for i, cs in enumerate(classes):
        rarest = min(set(cs), key=lambda c: (counts[c], c)) if cs and stratify else -1
        groups[rarest].append(i)
    keys = sorted(groups)
    quotas = _quotas([len(groups[k]) for k in keys], val_fraction)
    is_val = np.zeros(len(images), bool)
    for g, (key, q) in enumerate(zip(keys, quotas, strict=True)):
        members = np.array(groups[key])
        rng = np.random.default_rng([seed, g])  # one stream per group: groups do not interact
        is_val[rng.permutation(members)[:q]] = True
    if stratify:
        _cover_val(classes, is_val, len(class_names))

    train = [images[i] for i in range(len(images)) if not is_val[i]]
    val = [images[i] for i in range(len(images)) if is_val[i]]
    out.mkdir(parents=True, exist_ok=True)
    if layout == "copy":
        for part, files in (("train", train), ("val", val)):
            for p in files:
                rel = p.relative_to(src)
                _copy(p, out / "images" / part / rel)
                _copy(label_path_for(p), out / "labels" / part / rel.with_suffix(".txt"))
        data_yaml = write_data_yaml(out, class_names, tool="split")
    else:
        for part, files in (("train", train), ("val", val)):
            text = "".join(Path(os.path.relpath(p, out)).as_posix() + "\n" for p in files)
            (out / f"{part}.txt").write_text(text, encoding="utf-8")
        sources = {"train": "train.txt", "val": "val.txt"}
        data_yaml = write_data_yaml(out, class_names, sources, tool="split")
    return SplitResult(train, val, data_yaml, class_names, names_from)


def _cover_val(classes: list[list[int]], is_val: np.ndarray, nc: int) -> None:
    """Move one image into val for each class with images but none in val, when that leaves
    every class it holds still present in train. Changes ``is_val`` in place."""
    for k in range(nc):
        holders = [i for i, cs in enumerate(classes) if k in cs]
        if len(holders) < 2 or any(is_val[i] for i in holders):
            continue
        train_count = np.zeros(nc, np.int64)
        for i in np.flatnonzero(~is_val):
            train_count[list(set(classes[i]))] += 1
        for i in holders:  # the first movable one, in path order
            if all(train_count[c] >= 2 for c in set(classes[i])):
                is_val[i] = True
                break


def _copy(src: Path, dst: Path) -> None:
    if src.is_file():  # an image without a label file keeps having none
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
