"""K-fold splits of a dataset: lists of image paths, stratified over each image's classes.

:func:`assign_folds` is greedy iterative stratification (Sechidis, Tsoumakas and Vlahavas,
"On the stratification of multi-label data", 2011), written for detection: an image's label
set is the classes of its boxes, and the unit of assignment is a *group* of images (one image,
or every image whose file name gives the same ``group`` regex match, e.g. the frames of one
video), so near-duplicates never straddle train and val. The rarest class still to place is
served first; each of its units goes to the fold that still wants that class most (then the
fold that wants the most images, then a seeded random choice). A repair pass then moves a unit
(or swaps) a unit into any fold that lacks a class held by at least ``k`` units, when no such
class leaves a fold by it, so that every class with at least ``k`` images is in every
validation fold. Tangles of several classes each held by exactly ``k`` images can defeat the
repair (about 1 in 1000 random sets of 8-30 images, none of 3000 sets of 30-80 images); the
fold files are then written all the same and a warning names the class and fold.
The result depends only on the label sets, the groups and ``seed``.

:func:`write_folds` writes ``fold<i>/{train,val}.txt`` (absolute image paths; no image is
copied), a ``fold<i>/data.yaml`` using them, and ``folds.json`` (the settings and assignment).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..utils.atomic import write_json_atomic, write_text_atomic
from .datayaml import label_path_for, list_images, load_data_yaml
from .errors import DataError
from .split import read_classes
from .yolowrite import write_data_yaml

log = logging.getLogger("detforge")

__all__ = ["FoldSplit", "assign_folds", "group_keys", "load_or_write_folds", "fold_data_yaml"]


def group_keys(paths: Sequence[str | os.PathLike], pattern: str | None) -> list[str]:
    """The group of each image: the ``pattern`` match in its file name (group 1 when the regex
    has a group, else the whole match); an image without a match, or with no pattern, is its
    own group (its path)."""
    if pattern is None:
        return [str(p) for p in paths]
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise DataError(f"group: {pattern!r} is not a valid regular expression: {e}") from None
    keys = []
    for p in paths:
        m = rx.search(Path(p).name)
        keys.append(f"group:{m.group(1) if rx.groups else m.group(0)}" if m else str(p))
    return keys


def assign_folds(
    labels: Sequence[Sequence[int]], k: int, seed: int = 0, groups: Sequence[str] | None = None
) -> list[int]:
    """The validation fold (0..k-1) of each image.

    labels: the class ids of each image's boxes (repeats allowed); groups: a key per image,
    images with the same key share a fold (None: every image alone).
    """
    n = len(labels)
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    keys = list(groups) if groups is not None else [str(i) for i in range(n)]
    members: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        members[key].append(i)
    if len(members) < k:
        raise DataError(f"k={k} folds need at least {k} images (or groups), found {len(members)}")
    rng = np.random.default_rng(seed)
    units = [members[key] for key in sorted(members)]
    units = [units[j] for j in rng.permutation(len(units))]
    nc = max((c for cs in labels for c in cs), default=-1) + 1
    holds = np.zeros((len(units), nc), np.int64)  # images of the unit holding each class
    for u, imgs in enumerate(units):
        for i in imgs:
            holds[u, sorted(set(labels[i]))] += 1
    sizes = np.array([len(imgs) for imgs in units], np.float64)
    want_class = np.tile(holds.sum(0) / k, (k, 1)).astype(np.float64)  # (k, nc)
    want_size = np.full(k, sizes.sum() / k)
    fold_of = np.full(len(units), -1)

    def place(u: int, c: int | None) -> None:
        score = want_class[:, c] if c is not None else want_size
        best = np.flatnonzero(score == score.max())
        if len(best) > 1 and c is not None:
            by_size = want_size[best]
            best = best[by_size == by_size.max()]
        f = int(best[rng.integers(len(best))]) if len(best) > 1 else int(best[0])
        fold_of[u] = f
        want_class[f] -= holds[u]
        want_size[f] -= sizes[u]

    remaining = holds.sum(0)
    while (remaining > 0).any():
        c = int(np.argmin(np.where(remaining > 0, remaining, np.iinfo(np.int64).max)))
        for u in np.flatnonzero((holds[:, c] > 0) & (fold_of < 0)):
            place(int(u), c)
        remaining = holds[fold_of < 0].sum(0)
    for u in np.flatnonzero(fold_of < 0):  # images without boxes balance the fold sizes
        place(int(u), None)
    _cover_every_fold(holds > 0, fold_of, k)
    out = [0] * n
    for u, imgs in enumerate(units):
        for i in imgs:
            out[i] = int(fold_of[u])
    return out


def _cover_every_fold(has: np.ndarray, fold_of: np.ndarray, k: int) -> None:
    """For each class held by >= k units (a *required* class) but absent from a fold ``f``,
    move one of its units ``u`` there from a fold ``g`` holding the class in two or more
    units, alone or swapped with a unit ``v`` of ``f``, when no required class leaves ``g`` or
    ``f`` by it (a class of fewer than k units cannot be in every fold anyway). Changes
    ``fold_of`` in place. has: (units, classes) bool."""
    required = has.sum(0) >= k

    def keeps_required(g: int, f: int, u: int, v: int | None) -> bool:
        trial = fold_of.copy()
        trial[u] = f
        if v is not None:
            trial[v] = g
        for h in (g, f):
            before = has[fold_of == h][:, required].any(0)
            if (before & ~has[trial == h][:, required].any(0)).any():
                return False
        return True

    for _ in range(k):  # a repair can make another one possible: a few rounds
        repaired = False
        for c in np.flatnonzero(required):
            for f in range(k):
                if has[fold_of == f, c].any():
                    continue
                done = False
                for u in np.flatnonzero(has[:, c]):
                    g = int(fold_of[u])
                    if has[fold_of == g, c].sum() < 2:
                        continue
                    for v in [None, *np.flatnonzero(fold_of == f)]:
                        if keeps_required(g, f, int(u), v):
                            fold_of[u] = f
                            if v is not None:
                                fold_of[v] = g
                            done = repaired = True
                            break
                    if done:
                        break
        if not repaired:
            return


@dataclass
class FoldSplit:
    """The folds of a k-fold run: ``images`` (absolute paths, sorted) and the validation fold
    of each, the class names, and the settings that made them."""

    images: list[str]
    fold: list[int]
    names: list[str]
    settings: dict

    def val(self, i: int) -> list[str]:
        return [p for p, f in zip(self.images, self.fold, strict=True) if f == i]

    def train(self, i: int) -> list[str]:
        return [p for p, f in zip(self.images, self.fold, strict=True) if f != i]


def fold_data_yaml(folds_dir: Path, i: int) -> Path:
    return Path(folds_dir) / f"fold{i}" / "data.yaml"


def _pooled_images(data_yaml: Path, pool: bool) -> tuple[list[str], list[str]]:
    spec = load_data_yaml(data_yaml)
    sources = spec.train + (spec.val if pool else [])
    entries = list_images(sources, spec.root, "train+val" if pool else "train")
    return sorted({os.path.abspath(e.path) for e in entries}), spec.names


def load_or_write_folds(
    folds_dir: str | os.PathLike,
    data_yaml: str | os.PathLike,
    k: int,
    seed: int = 0,
    group: str | None = None,
    pool: bool = True,
) -> FoldSplit:
    """The folds of ``data_yaml``, written once to ``folds_dir`` and read back afterwards.

    pool: split train and val together (False: only the train split; its val stays unused).
    An existing ``folds.json`` made with other settings is an error naming them: the folds of
    a k-fold folder never change under finished runs.
    """
    folds_dir = Path(folds_dir)
    settings = {
        "data": os.path.abspath(data_yaml), "k": k, "seed": seed, "group": group, "pool": pool,
    }  # fmt: skip
    record = folds_dir / "folds.json"
    if record.is_file():
        saved = json.loads(record.read_text(encoding="utf-8"))
        differ = [f"{key}={saved['settings'].get(key)!r}" for key in settings
                  if saved["settings"].get(key) != settings[key]]  # fmt: skip
        if differ:
            raise DataError(
                f"{record}: these folds were made with {', '.join(differ)}; use another name= "
                "for a k-fold run with other settings"
            )
        return FoldSplit(saved["images"], saved["fold"], saved["names"], saved["settings"])
    images, names = _pooled_images(Path(data_yaml), pool)
    labels = [read_classes(label_path_for(p)) for p in images]
    fold = assign_folds(labels, k, seed, group_keys(images, group))
    split = FoldSplit(images, fold, names, settings)
    for c, name in enumerate(names):
        holders = {f for f, cs in zip(fold, labels, strict=True) if c in cs}
        missing = sorted(set(range(k)) - holders)
        if holders and missing:
            log.warning(
                "k-fold: class %r is in no validation image of fold(s) %s (%s)", name,
                ",".join(map(str, missing)),
                "its images are fewer than k" if sum(c in cs for cs in labels) < k
                else "grouped or entangled with other classes",
            )  # fmt: skip
    for i in range(k):
        sub = folds_dir / f"fold{i}"
        sub.mkdir(parents=True, exist_ok=True)
        for part, files in (("train", split.train(i)), ("val", split.val(i))):
            write_text_atomic(sub / f"{part}.txt", "".join(p + "\n" for p in files))
        write_data_yaml(sub, names, {"train": "train.txt", "val": "val.txt"}, tool="kfold")
    # written last: its presence says every fold's files are complete
    write_json_atomic(record, {"settings": settings, "names": names, "images": images,
                               "fold": fold}, indent=1)  # fmt: skip
    return split
