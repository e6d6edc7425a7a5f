"""Output folders and the names in them: numbered run folders (``runs/train``, ``runs/train2``,
...) for every command that writes one, and unique output names for input files that share a
stem. No detforge imports, so any layer may use it."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

__all__ = ["make_run_dir", "unique_output_names"]


def make_run_dir(project: str | os.PathLike, name: str, exist_ok: bool = False) -> Path:
    """``project/name``, or the first free ``project/name2``, ``name3``... unless ``exist_ok``."""
    project = Path(project)
    base = project / name
    if exist_ok or not base.exists():
        base.mkdir(parents=True, exist_ok=True)
        return base
    stem = re.sub(r"\d+$", "", name) or name
    n = 2
    while True:
        cand = project / f"{stem}{n}"
        try:
            cand.mkdir(parents=True, exist_ok=False)  # atomic claim, safe between processes
            return cand
        except FileExistsError:
            n += 1


def unique_output_names(files: Sequence[str | os.PathLike]) -> list[str]:
    """One output name (no suffix) per input file, unique in one flat output folder.

    A file keeps its stem when no other file has that stem (case-insensitively, for
    case-insensitive file systems), so the common case names outputs as before. Files whose
    stems clash (``a.jpg`` and ``a.png``, ``x/a.jpg`` and ``y/a.jpg``) are named by their path
    relative to the folder the files share, parts joined by ``__`` and the suffix kept
    (``x__a.jpg``, ``a.png``); a name still taken gets ``~2``, ``~3``... Same inputs, same names.
    """
    paths = [Path(f) for f in files]
    if not paths:
        return []
    root = Path(os.path.commonpath([str(p.absolute().parent) for p in paths]))
    stems = Counter(p.stem.casefold() for p in paths)
    names = [p.stem if stems[p.stem.casefold()] == 1 else "" for p in paths]
    taken = {n.casefold() for n in names if n}
    for i, p in enumerate(paths):
        if names[i]:
            continue
        base = "__".join(p.absolute().relative_to(root).parts)
        name, k = base, 2
        while name.casefold() in taken:
            name, k = f"{base}~{k}", k + 1
        names[i] = name
        taken.add(name.casefold())
    return names
