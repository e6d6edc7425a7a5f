"""What the workers of one study share: the lock file around counting and asking, the record of
which process runs a trial (to find trials of dead workers), and how trials count towards
``trials=N``."""

from __future__ import annotations

import fcntl
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from .storage import superseded
from .trial import TrialOutcome

__all__ = ["locked", "me", "alive", "counted", "result_attrs"]


@contextmanager
def locked(path: Path) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def me() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": psutil.Process().pid,
            "started": psutil.Process().create_time()}  # fmt: skip


def alive(worker: dict[str, Any]) -> bool:
    try:
        return psutil.Process(worker["pid"]).create_time() == worker["started"]
    except psutil.NoSuchProcess:
        return False


def result_attrs(o: TrialOutcome) -> dict[str, Any]:
    return {"fitness": o.fitness, "epochs": o.epochs, "seconds": round(o.seconds, 3),
            "pruned_at": o.pruned_at, "reason": o.reason, "run_dir": str(o.run_dir)}  # fmt: skip


def counted(trials: list) -> int:
    """Trials that count towards ``trials``: running or finished, except failed ones whose
    parameters were queued again (the re-run counts instead)."""
    again = superseded(trials)
    n = 0
    for t in trials:
        if t.state.name in ("COMPLETE", "PRUNED", "RUNNING"):
            n += 1
        elif t.state.name == "FAIL" and t.number not in again:
            n += 1
    return n
