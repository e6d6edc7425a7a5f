"""One trial: an ordinary training run in the study folder, with a hook that reports its fitness
to the Optuna trial after every validation and stops the run when the pruner says so.

Pruning asks the trainer to stop after the epoch (``request_stop``) rather than raising out of the
hook: the epoch's checkpoint, ``results.csv`` row and final validation are written as for any
run that stops early, so a pruned trial's folder is as consistent as a finished one's. The trial
is then told PRUNED. Any exception of a trial is its failure, not the study's.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..engine.hooks import Hook
from ..engine.trainer import Trainer
from ..track import tracking_hooks
from ..utils.atomic import write_text_atomic

__all__ = ["PruningHook", "TrialOutcome", "run_trial"]

log = logging.getLogger("detforge")


class PruningHook(Hook):
    """Report ``fitness`` of every validated epoch to ``trial`` (step = the epoch number) and
    stop training after an epoch the pruner prunes."""

    def __init__(self, trial: Any):
        self.trial = trial
        self.pruned_at: int | None = None
        self.last_fitness: float | None = None
        self.epochs = 0

    def after_epoch(self, trainer: Trainer) -> None:
        self.epochs = trainer.epoch
        if not trainer.validated:
            return
        self.last_fitness = float(trainer.row["fitness"])
        self.trial.report(self.last_fitness, trainer.epoch)
        if self.trial.should_prune():
            self.pruned_at = trainer.epoch
            trainer.request_stop(f"trial pruned at epoch {trainer.epoch}")


@dataclass
class TrialOutcome:
    state: str  # "complete", "pruned" or "fail"
    fitness: float | None  # best fitness (complete), last reported (pruned), None (fail)
    epochs: int
    seconds: float
    pruned_at: int | None
    reason: str
    run_dir: Path


def run_trial(trial: Any, cfg: RunConfig | Exception, run_dir: Path) -> TrialOutcome:
    """Train ``cfg`` (or record ``cfg``, the error that made the trial's settings invalid) and
    write ``reason.txt`` into ``run_dir``: the outcome's one line, and a traceback on failure."""
    hook = PruningHook(trial)
    t0 = time.perf_counter()
    details = ""
    try:
        if isinstance(cfg, Exception):
            raise cfg
        trackers = tracking_hooks(cfg, f"tune/{run_dir.parent.name}")
        result = Trainer(cfg, hooks=[*trackers, hook]).fit()
    except Exception as e:
        details = "".join(traceback.format_exception(e))
        reason = f"failed: {type(e).__name__}: {e}"
        outcome = TrialOutcome("fail", None, hook.epochs, 0.0, None, reason, run_dir)
        log.error("trial %d %s", trial.number, reason)
    else:
        if hook.pruned_at is not None:
            reason = f"pruned at epoch {hook.pruned_at}: fitness {hook.last_fitness:.5f}"
            outcome = TrialOutcome(
                "pruned", hook.last_fitness, result.epochs_run, 0.0, hook.pruned_at, reason, run_dir
            )
        else:
            reason = (
                f"complete: best fitness {result.best_fitness:.5f} at epoch {result.best_epoch}"
            )
            if result.stop_reason:
                reason += f" ({result.stop_reason})"
            outcome = TrialOutcome(
                "complete", float(result.best_fitness), result.epochs_run, 0.0, None, reason,
                run_dir,
            )  # fmt: skip
    outcome.seconds = time.perf_counter() - t0
    run_dir.mkdir(parents=True, exist_ok=True)  # a trial whose settings failed has no run yet
    write_text_atomic(run_dir / "reason.txt", f"{outcome.reason}\n{details}")
    return outcome
