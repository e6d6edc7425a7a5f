"""What the workers of one study share: the lock file around counting and asking, the record of
which process runs a trial (to find trials of dead workers), and how trials count towards
``trials=N``."""

from __future__ import annotations

import fcntl
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from .storage import superseded
from .trial import TrialOutcome

log = logging.getLogger("detforge")

__all__ = ["locked", "me", "alive", "counted", "result_attrs", "fail_dead_local_workers"]


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


def fail_dead_local_workers(optuna: Any, study: Any, folder: Path) -> None:
    """Journal storages: mark the RUNNING trials of dead workers of this host failed (found by
    the host, pid and start time each worker records) and queue their parameters once."""
    storage = study._storage  # Optuna has no public call to finish another worker's trial
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        w = t.user_attrs.get("worker")
        if not w or w["host"] != socket.gethostname() or alive(w):
            continue
        again = "requeued_from" not in t.user_attrs
        reason = f"failed: worker {w['pid']} died during the trial; " + (
            "its parameters are queued again" if again else "not queued again (a re-run)"
        )
        run_dir = folder / f"trial_{t.number:03d}"
        result = {"reason": reason, "run_dir": str(run_dir), "requeued": again}
        storage.set_trial_user_attr(t._trial_id, "result", result)
        storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        if again:
            study.enqueue_trial(t.params, user_attrs={"requeued_from": t.number})
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "reason.txt").write_text(reason + "\n")
        log.warning("tune: trial %d %s", t.number, reason)
