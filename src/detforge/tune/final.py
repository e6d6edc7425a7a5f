"""``final=true``: once the study has its trials, retrain the best trial's settings at the full
budget (the study's epochs, whole data, image size: what ``best.yaml`` holds) as the ordinary
run folder ``runs/tune/<study>/final/``, validated as every run is (``best.pt`` on the val set).

One worker trains it. The record of the final run lives in the study's storage (study user
attribute ``final``: trial, parameters, state, worker, metrics) and is claimed under the study's
lock file: on one machine exactly one worker claims it; workers on other machines see the claim
in the storage and leave it (two machines asking within the same instant could both claim it:
give ``final=true`` to one machine's command when that matters). A complete record for the
current best trial, whose run folder still has its ``best.pt``, is not trained again; a failed
one, or one whose worker died, is.
"""

from __future__ import annotations

import logging
import socket
import time
import traceback
from pathlib import Path
from typing import Any

from ..config import load_config
from ..engine.preflight import check_before_data
from ..engine.trainer import Trainer
from ..track import tracking_hooks
from ..utils.atomic import write_json_atomic, write_text_atomic
from .outputs import best_trial
from .workers import alive, locked, me

__all__ = ["final_run", "final_line", "FINAL_METRICS"]

log = logging.getLogger("detforge")

FINAL_METRICS = ("map50_95", "map50", "map75", "precision", "recall", "fitness")


def _reusable(rec: dict[str, Any] | None, trial: Any) -> bool:
    """A final record that stands for ``trial``: complete with its weights, or being trained
    by a live worker (here, or on another machine)."""
    if not rec or rec.get("trial") != trial.number or rec.get("params") != trial.params:
        return False
    w = rec.get("worker") or {}
    here = w.get("host") == socket.gethostname()
    if rec["state"] == "complete":
        return not here or (Path(rec["run_dir"]) / "weights" / "best.pt").is_file()
    return rec["state"] == "running" and (not here or alive(w))


def final_run(tuner: Any, study: Any) -> dict[str, Any]:
    """Train (or find) the final run of ``tuner``'s study; its record. The study must have its
    trials: this waits for trials still running, so the best one is final."""
    _wait_for_running(tuner, study)
    lock = tuner.dir / "tune.lock"
    with locked(lock):
        best = best_trial(study.get_trials(deepcopy=False))
        if best is None:
            return {"state": "skipped", "reason": "no trial completed"}
        rec = study.user_attrs.get("final")
        if _reusable(rec, best):
            return rec
        run_dir = tuner.dir / "final"
        rec = {"trial": best.number, "params": best.params, "state": "running",
               "worker": me(), "run_dir": str(run_dir)}  # fmt: skip
        study.set_user_attr("final", rec)
    log.info("tune: final run: trial %d's settings at the full budget into %s", best.number,
             run_dir)  # fmt: skip
    t0 = time.perf_counter()
    try:
        values = {**tuner.values, **best.params, "train.project": str(tuner.dir),
                  "train.name": "final", "train.exist_ok": True}  # fmt: skip
        cfg = load_config(values, cfg_file=tuner.opts.cfg_file)
        check_before_data(cfg)
        result = Trainer(cfg, hooks=tracking_hooks(cfg, f"tune/{tuner.name}")).fit()
    except Exception as e:
        rec.update(state="fail", reason=f"failed: {type(e).__name__}: {e}")
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / "reason.txt", rec["reason"] + "\n" + traceback.format_exc())
        log.error("tune: final run %s", rec["reason"])
    else:
        metrics = {k: float(v) for k, v in result.metrics.items()}
        rec.update(state="complete", metrics=metrics, epochs=result.epochs_run,
                   best_epoch=result.best_epoch, imgsz=cfg.train.imgsz,
                   fraction=cfg.data.fraction)  # fmt: skip
    rec["seconds"] = round(time.perf_counter() - t0, 1)
    with locked(lock):
        study.set_user_attr("final", rec)
    write_json_atomic(run_dir / "final.json", rec, indent=2)
    return rec


def _wait_for_running(tuner: Any, study: Any, poll: float = 2.0) -> None:
    """Until no trial runs that can still finish: any on an RDB storage (a dead worker's is
    failed by heartbeat), those of live workers of this host on a journal."""
    while True:
        with locked(tuner.dir / "tune.lock"):
            tuner.fail_stale(study)
            running = [t for t in study.get_trials(deepcopy=False) if t.state.name == "RUNNING"]
        if not tuner.opts.storage:
            here = socket.gethostname()
            running = [t for t in running if (t.user_attrs.get("worker") or {}).get("host") == here]
        if not running:
            return
        log.info("tune: final run waits for trial(s) %s", [t.number for t in running])
        time.sleep(poll)


def final_line(rec: dict[str, Any] | None) -> str | None:
    """The summary line of a final run record, or None without one."""
    if not rec:
        return None
    head = f"final: trial {rec.get('trial')}'s settings at the full budget"
    if rec["state"] == "complete":
        m = rec["metrics"]
        stats = ", ".join(f"{k} {m[k]:.4f}" for k in FINAL_METRICS if k in m)
        return f"{head} ({rec['epochs']} epochs, imgsz {rec['imgsz']}): {stats} ({rec['run_dir']})"
    if rec["state"] == "running":
        w = rec["worker"]
        return f"{head}: being trained by worker {w['pid']} on {w['host']} ({rec['run_dir']})"
    return f"{head}: {rec.get('reason', rec['state'])}"
