"""Numbered output folders (``runs/train``, ``runs/train2``, ...), for every command that writes
one: training, validation, prediction, diagnosis. No detforge imports, so any layer may use it."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["make_run_dir"]


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
