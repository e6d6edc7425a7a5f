"""Where a study lives, and how each kind of storage finds the trials of workers that died.

- No ``storage=``: an Optuna journal file in the study folder (``journal.log``, with the
  open-file lock several local processes share). It has no heartbeat: a trial left RUNNING is
  found by the host name, pid and process start time its worker recorded
  (``workers.fail_dead_local_workers``), so it sees the dead workers of this machine only.
- ``storage=postgresql://...``, ``sqlite:///...`` or any other SQLAlchemy URL: an
  ``optuna.storages.RDBStorage`` with heartbeats. Each running trial records one every
  ``heartbeat`` seconds from a thread of its worker; any worker, on any machine, fails a trial
  silent for twice as long and queues its parameters again, once (Optuna's
  ``RetryFailedTrialCallback(max_retry=1)``; a retry that dies too is not queued again).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..config import ConfigError

__all__ = ["DEFAULT_HEARTBEAT", "make_storage", "heartbeat", "fail_silent_trials", "retries",
           "superseded", "silent_reason"]  # fmt: skip

log = logging.getLogger("detforge")

DEFAULT_HEARTBEAT = 60  # seconds; Optuna's own example uses 60 with a grace period of 120


def make_storage(optuna: Any, url: str | None, folder: Path, beat: int | None) -> Any:
    """The study's storage: the journal in ``folder`` (``url`` None) or an RDB storage for
    ``url`` with a heartbeat every ``beat`` seconds (default 60) and a grace period of twice
    that."""
    if url is None:
        if beat is not None:
            raise ConfigError(
                "tune.heartbeat: only with storage=URL (an RDB storage); the journal storage "
                "finds dead workers by their process id"
            )
        j = optuna.storages.journal
        path = str(folder / "journal.log")
        return optuna.storages.JournalStorage(
            j.JournalFileBackend(path, lock_obj=j.JournalFileOpenLock(path))
        )
    if beat is not None and beat < 1:
        raise ConfigError(f"tune.heartbeat: {beat} must be a positive integer (seconds)")
    beat = beat or DEFAULT_HEARTBEAT
    s = optuna.storages
    if hasattr(s, "RetryHeartbeatStaleTrialCallback"):  # Optuna >= 4.9's names
        retry = {"heartbeat_stale_trial_callback": s.RetryHeartbeatStaleTrialCallback(max_retry=1)}
    else:
        retry = {"failed_trial_callback": s.RetryFailedTrialCallback(max_retry=1)}
    try:
        return s.RDBStorage(url, heartbeat_interval=beat, grace_period=2 * beat, **retry)
    except ImportError as e:  # the database driver (psycopg2 for postgresql://) is missing
        raise ConfigError(f"storage={url}: {e}; pip install 'detforge[tune]'") from None
    except Exception as e:  # a malformed URL or a database that does not answer
        raise ConfigError(f"storage={url}: {type(e).__name__}: {e}") from None


def _heartbeat_interval(storage: Any) -> int | None:
    get = getattr(storage, "get_heartbeat_interval", None)
    return get() if get else None


@contextmanager
def heartbeat(storage: Any, trial_id: int) -> Iterator[None]:
    """Record the trial's heartbeat every interval while the block runs (RDB storages only).
    A heartbeat that fails (the database briefly away) is logged and tried again next time."""
    interval = _heartbeat_interval(storage)
    if not interval:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                storage.record_heartbeat(trial_id)
            except Exception as e:
                log.warning("tune: heartbeat of trial id %d not recorded: %s", trial_id, e)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name="detforge-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def fail_silent_trials(optuna: Any, study: Any, folder: Path) -> None:
    """Fail the RUNNING trials whose heartbeat stopped (their worker died, on any machine) and
    queue each once more; write the reason into the trial's folder where it is on this
    machine. Nothing to do for a journal storage."""
    interval = _heartbeat_interval(study._storage)
    if not interval:
        return
    running = {
        t.number
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    }
    if not running:
        return
    optuna.storages.fail_stale_trials(study)
    trials = study.get_trials(deepcopy=False)
    again = retries(trials)
    for t in trials:
        if t.number in running and t.state.name == "FAIL":
            reason = silent_reason(t, again, 2 * interval)
            log.warning("tune: trial %d %s", t.number, reason)
            run_dir = folder / f"trial_{t.number:03d}"
            if run_dir.is_dir():
                (run_dir / "reason.txt").write_text(reason + "\n")


def retries(trials: list) -> dict[int, int]:
    """``{failed trial: the trial that retries it}`` of the heartbeat's re-queued trials."""
    out = {}
    for t in trials:
        history = t.system_attrs.get("retry_history")
        if history:
            out[history[-1]] = t.number
    return out


def silent_reason(t: Any, again: dict[int, int], grace: int | None = None) -> str:
    """The reason of a trial the heartbeat check failed (a FAIL trial without a result)."""
    since = f" for {grace} s" if grace else ""
    head = f"failed: no heartbeat{since}, its worker died during the trial; "
    if t.number in again:
        return head + f"its parameters are queued again (trial {again[t.number]})"
    return head + "not queued again (a re-run)"


def superseded(trials: list) -> set[int]:
    """The failed trials whose parameters were queued again: by the pid check of a journal
    storage (``requeued`` in their result) or by an RDB storage's heartbeat check."""
    out = set(retries(trials))
    for t in trials:
        if (t.user_attrs.get("result") or {}).get("requeued"):
            out.add(t.number)
    return out
