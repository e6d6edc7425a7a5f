"""Dataset descriptions (``data.yaml``) and image listing for the YOLO layout.

A ``data.yaml`` holds::

    path: ../datasets/mydata   # optional: dataset root; default the yaml's folder,
                               # a relative path is relative to the yaml's folder
    train: images/train        # folder, .txt list of images, or a list of those
    val: [images/val, extra_val.txt]
    test: images/test          # optional
    nc: 2                      # optional, must agree with names
    names: [cat, dog]          # or {0: cat, 1: dog}, covering 0..nc-1

Split sources are relative to ``path``. Folders are searched recursively for image files
(``IMAGE_SUFFIXES``, case-insensitive). In a ``.txt`` list, one image per line (blank lines and
lines starting with ``#`` ignored); an absolute entry is used as is, a relative entry is taken
relative to the dataset root (the common YOLO convention, e.g. ``./images/train/0001.jpg``), or,
when that file does not exist but one relative to the ``.txt`` file's own folder does, that one.
Entries found nowhere are kept (reported relative to the root) so validation can report them as
missing with the list's file and line.

The label file of an image replaces the last ``images`` component of its path with ``labels`` and
the suffix with ``.txt`` (``d/images/train/a.jpg`` -> ``d/labels/train/a.txt``); an image path
without an ``images`` component has its label file next to it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from detforge.data.errors import DataConfigError, DataError

__all__ = [
    "IMAGE_SUFFIXES",
    "DataSpec",
    "ImageEntry",
    "load_data_yaml",
    "list_images",
    "parse_names",
    "label_path_for",
]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})

Source = str | os.PathLike[str]


@dataclass
class DataSpec:
    """A parsed ``data.yaml``: absolute paths of each split's sources and the class names."""

    root: Path
    train: list[Path]
    val: list[Path]
    test: list[Path] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    yaml_path: Path | None = None

    @property
    def nc(self) -> int:
        """Number of classes."""
        return len(self.names)

    def split(self, name: str) -> list[Path]:
        """Sources of split ``name`` ('train', 'val' or 'test')."""
        if name not in ("train", "val", "test"):
            raise KeyError(f"unknown split {name!r}: expected 'train', 'val' or 'test'")
        return getattr(self, name)


class ImageEntry(NamedTuple):
    """One image of a split. ``where`` is ``"list.txt:12"`` for entries of a .txt list, else ''."""

    path: Path
    where: str


def _norm(p: Path) -> Path:
    # absolute + normpath (not resolve): keeps the user's symlinked paths, drops '..' segments
    return Path(os.path.normpath(p.expanduser().absolute()))


def _fail(yaml_path: Path, key: str, problem: str) -> DataConfigError:
    return DataConfigError(f"{yaml_path}: key '{key}': {problem}")


def parse_names(raw: Any, yaml_path: Path) -> list[str]:
    """The ``names`` value of a data.yaml (a list, or a dict covering 0..K-1) -> K names."""
    if isinstance(raw, dict):
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in raw):
            raise _fail(yaml_path, "names", "dict keys must be integer class ids")
        expected = set(range(len(raw)))
        if set(raw) != expected:
            missing = sorted(expected - set(raw))
            extra = sorted(set(raw) - expected)
            raise _fail(
                yaml_path,
                "names",
                f"dict must cover class ids 0..{len(raw) - 1} (missing {missing}, extra {extra})",
            )
        values = [raw[i] for i in range(len(raw))]
    elif isinstance(raw, list):
        values = raw
    else:
        raise _fail(yaml_path, "names", f"expected a list or a dict, got {type(raw).__name__}")
    if not values:
        raise _fail(yaml_path, "names", "no class names")
    names = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            raise _fail(yaml_path, "names", f"name of class {i} must be a string, got {v!r}")
        names.append(str(v))
    return names


def _parse_sources(raw: Any, key: str, root: Path, yaml_path: Path) -> list[Path]:
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise _fail(yaml_path, key, "empty list of sources")
    out = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise _fail(yaml_path, key, f"expected a path or a list of paths, got {item!r}")
        p = _norm(root / Path(item.strip()).expanduser())
        if not p.exists():
            raise _fail(yaml_path, key, f"path does not exist: {p}")
        if p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES | {".txt"}:
            raise _fail(yaml_path, key, f"expected a folder, a .txt list or an image: {p}")
        out.append(p)
    return out


def load_data_yaml(path: Source) -> DataSpec:
    """Read and check a ``data.yaml``; raise ``DataConfigError`` naming the file and key."""
    yaml_path = _norm(Path(path))
    if not yaml_path.is_file():
        raise DataConfigError(f"{yaml_path}: data yaml file not found")
    try:
        doc = yaml.safe_load(yaml_path.read_text(encoding="utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise DataConfigError(f"{yaml_path}: not valid YAML: {e}") from e
    if not isinstance(doc, dict):
        raise DataConfigError(f"{yaml_path}: expected a mapping of keys, got {type(doc).__name__}")

    root = yaml_path.parent
    if doc.get("path") not in (None, ""):
        if not isinstance(doc["path"], str):
            raise _fail(yaml_path, "path", f"expected a string, got {doc['path']!r}")
        root = _norm(yaml_path.parent / Path(doc["path"]).expanduser())
        if not root.is_dir():
            raise _fail(yaml_path, "path", f"dataset root is not a folder: {root}")

    if "names" not in doc:
        raise _fail(yaml_path, "names", "missing")
    names = parse_names(doc["names"], yaml_path)
    if doc.get("nc") is not None:
        nc = doc["nc"]
        if isinstance(nc, bool) or not isinstance(nc, int):
            raise _fail(yaml_path, "nc", f"expected an integer, got {nc!r}")
        if nc != len(names):
            raise _fail(yaml_path, "nc", f"nc={nc} but 'names' has {len(names)} entries")

    splits: dict[str, list[Path]] = {}
    for key in ("train", "val", "test"):
        raw = doc.get(key)
        if raw in (None, "", []):
            if key != "test":
                raise _fail(yaml_path, key, "missing")
            splits[key] = []
            continue
        splits[key] = _parse_sources(raw, key, root, yaml_path)
    return DataSpec(root=root, names=names, yaml_path=yaml_path, **splits)


def _read_list(txt: Path, root: Path | None) -> list[ImageEntry]:
    entries = []
    base = txt.parent
    text = txt.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of line 1
    for lineno, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        p = Path(s).expanduser()
        if not p.is_absolute():
            candidates = [c / p for c in (root, base) if c is not None]
            p = next((c for c in candidates if c.exists()), candidates[0])
        entries.append(ImageEntry(_norm(p), f"{txt}:{lineno}"))
    return entries


def _walk_images(folder: Path) -> list[ImageEntry]:
    out = []
    for dirpath, _dirs, files in os.walk(folder):
        for f in files:
            if os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES:
                out.append(ImageEntry(Path(dirpath, f), ""))
    return out


def list_images(
    sources: Source | Sequence[Source], root: Source | None = None, split: str = "data"
) -> list[ImageEntry]:
    """All images of a split, sorted by path and de-duplicated (first occurrence kept).

    sources: folders, .txt lists or image files; relative ones are relative to ``root`` (or the
    working folder). Raises ``DataError`` naming the split and source if a source does not exist.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    root_p = _norm(Path(root)) if root is not None else None
    entries: list[ImageEntry] = []
    for src in sources:
        p = Path(src).expanduser()
        p = _norm(root_p / p if root_p is not None and not p.is_absolute() else p)
        if p.is_dir():
            entries += _walk_images(p)
        elif p.is_file() and p.suffix.lower() == ".txt":
            entries += _read_list(p, root_p)
        elif p.is_file():
            entries.append(ImageEntry(p, ""))
        else:
            raise DataError(f"{split}: source not found: {p}")
    unique: dict[str, ImageEntry] = {}
    for e in entries:
        unique.setdefault(e.path.as_posix(), e)
    return [unique[k] for k in sorted(unique)]


def label_path_for(image: Source) -> Path:
    """Label file of an image: last ``images`` component -> ``labels``, suffix -> ``.txt``."""
    p = Path(image)
    parts = list(p.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return p.with_suffix(".txt")
