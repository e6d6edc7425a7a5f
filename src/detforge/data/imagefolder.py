"""Image-classification data: the ImageFolder layout, read and checked before training.

A classification dataset is a folder with ``train/<class>/*.jpg`` and ``val/<class>/*.jpg``
(``test/`` optional), or a data.yaml with ``task: classify`` whose ``train``/``val``/``test``
name such folders (relative to ``path``, default the yaml's folder) and optionally ``names``
(the class order; default: the train split's folder names, sorted).

Checks, each naming the folder or file:

- a split with no class folder, or a class folder with no image: an error for train, a warning
  for val/test (a class absent from validation is reported, not fatal);
- a val/test class folder that train does not have: an error (its images could never be
  predicted right); a train class without a val folder: a warning;
- ``names`` in the yaml that differ from the train folders: an error listing both;
- an image that cannot be decoded: an error, unless ``skip_corrupt`` (then it is left out and
  listed in the warnings).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .datayaml import IMAGE_SUFFIXES
from .errors import DataConfigError, DataError
from .images import verify_image

__all__ = ["ClassifySplit", "ClassifyData", "load_classify_data", "is_classify_data"]


@dataclass
class ClassifySplit:
    """One split: image files and their class indices (same order), and what was reported."""

    root: Path
    files: list[Path]
    labels: list[int]
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)

    def counts(self, num_classes: int) -> list[int]:
        out = [0] * num_classes
        for c in self.labels:
            out[c] += 1
        return out


@dataclass
class ClassifyData:
    names: list[str]
    splits: dict[str, ClassifySplit]
    source: Path

    @property
    def warnings(self) -> list[str]:
        return [w for s in self.splits.values() for w in s.warnings]


def is_classify_data(path: str | os.PathLike) -> bool:
    """True for a data.yaml with ``task: classify`` or a folder holding ``train/<class>/``."""
    p = Path(path)
    if p.is_file() and p.suffix in (".yaml", ".yml"):
        try:
            meta = yaml.safe_load(p.read_text())
        except yaml.YAMLError:
            return False
        return isinstance(meta, dict) and meta.get("task") == "classify"
    return (
        p.is_dir() and (p / "train").is_dir() and any(d.is_dir() for d in (p / "train").iterdir())
    )


def _class_folders(split_dir: Path) -> list[str]:
    return sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))


def _images(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )


def _split_dirs(path: Path) -> tuple[dict[str, Path], list[str] | None, Path]:
    """Split folders, the yaml's class names (or None) and the source for messages."""
    if path.is_dir():
        inner = path / "data.yaml"  # e.g. written by `convert to=classify`: its class order wins
        if not (inner.is_file() and is_classify_data(inner)):
            splits = {s: path / s for s in ("train", "val", "test") if (path / s).is_dir()}
            return splits, None, path
        path = inner
    meta = yaml.safe_load(path.read_text())
    if not isinstance(meta, dict) or meta.get("task") != "classify":
        raise DataConfigError(f"{path}: not a classification data.yaml (needs 'task: classify')")
    root = Path(meta.get("path") or ".")
    root = root if root.is_absolute() else path.parent / root
    dirs = {s: root / str(meta[s]) for s in ("train", "val", "test") if meta.get(s)}
    for split, d in dirs.items():
        if not d.is_dir():
            raise DataConfigError(f"{path}: {split}: folder {d} does not exist")
    names = meta.get("names")
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    if names is not None and not (
        isinstance(names, list) and all(isinstance(n, str) for n in names)
    ):
        raise DataConfigError(f"{path}: names: expected a list of class names, got {names!r}")
    return dirs, names, path


def load_classify_data(path: str | os.PathLike, skip_corrupt: bool = False) -> ClassifyData:
    """Read and check a classification dataset (a folder or a ``task: classify`` data.yaml)."""
    dirs, names, source = _split_dirs(Path(path))
    for need in ("train", "val"):
        if need not in dirs:
            raise DataConfigError(f"{source}: no '{need}' split folder")
    train_classes = _class_folders(dirs["train"])
    if not train_classes:
        raise DataError(f"{dirs['train']}: no class folders (expected train/<class>/<images>)")
    if names is not None and sorted(names) != train_classes:
        raise DataConfigError(
            f"{source}: names {names} differ from the class folders of {dirs['train']}: "
            f"{train_classes}"
        )
    names = list(names) if names is not None else train_classes
    index = {n: i for i, n in enumerate(names)}
    splits = {}
    for split, d in dirs.items():
        classes = _class_folders(d)
        extra = sorted(set(classes) - set(names))
        if extra:
            raise DataError(f"{d}: class folders {extra} are not in the train split's classes")
        out = ClassifySplit(d, [], [])
        for name in names:
            folder = d / name
            files = _images(folder) if folder.is_dir() else []
            if not files:
                what = "no folder" if not folder.is_dir() else "no images"
                msg = f"{folder}: class '{name}' has {what} in the {split} split"
                if split == "train":
                    raise DataError(msg)
                out.warnings.append(msg)
            for f in files:
                try:
                    verify_image(f)
                except DataError as e:
                    if not skip_corrupt:
                        raise
                    out.warnings.append(f"skipped: {e}")
                    continue
                out.files.append(f)
                out.labels.append(index[name])
        splits[split] = out
    return ClassifyData(names, splits, source)
