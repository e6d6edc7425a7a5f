"""Run folders: numbered creation, atomic text writes, results.csv and the run log."""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..utils.atomic import write_text_atomic
from ..utils.rundir import make_run_dir

__all__ = ["make_run_dir", "write_text_atomic", "ResultsCSV", "attach_log_file"]


class ResultsCSV:
    """One row per epoch; the whole file is rewritten atomically so it is never half a row.

    Columns are the union of every row's keys, in first-seen order (validation columns appear
    in the first validated epoch; earlier rows leave them empty).
    """

    def __init__(self, path: str | os.PathLike, rows: Sequence[Mapping] = ()):
        self.path = Path(path)
        self.rows: list[dict] = [dict(r) for r in rows]

    @classmethod
    def load(cls, path: str | os.PathLike) -> ResultsCSV:
        path = Path(path)
        if not path.is_file():
            return cls(path)
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        return cls(path, rows)

    def truncate(self, epochs_done: int) -> None:
        """Drop rows of epochs after ``epochs_done`` (used when resuming an earlier checkpoint)."""
        self.rows = [r for r in self.rows if int(r["epoch"]) <= epochs_done]

    def append(self, row: Mapping) -> None:
        self.rows.append(dict(row))
        columns: list[str] = []
        for r in self.rows:
            columns += [k for k in r if k not in columns]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, restval="")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: _fmt(v) for k, v in r.items()})
        write_text_atomic(self.path, buf.getvalue())


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


class _RunLogHandler(logging.FileHandler):
    """A file handler that goes quiet when its file cannot be written (full disk, folder gone):
    the console still shows every message, and the error that stops the run names the cause
    once instead of a logging traceback per message."""

    failed = False

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        self.failed = True

    def emit(self, record: logging.LogRecord) -> None:
        if not self.failed:
            super().emit(record)


def attach_log_file(logger: logging.Logger, path: Path) -> logging.Handler:
    """Mirror ``logger`` into ``path`` (appending, so a resumed run keeps one log)."""
    handler = _RunLogHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    return handler
