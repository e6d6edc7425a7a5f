"""Small atomic writers for the evaluation outputs (CSV tables and json summaries)."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..utils.atomic import write_json_atomic, write_text_atomic

__all__ = ["write_csv", "write_json"]


def _cell(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Rows of dicts -> CSV; columns are the union of keys in first-seen order."""
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _cell(v) for k, v in r.items()})
    write_text_atomic(path, buf.getvalue())
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Indented json (numpy scalars and arrays allowed), written atomically."""
    write_json_atomic(path, obj, indent=2)
    return Path(path)
