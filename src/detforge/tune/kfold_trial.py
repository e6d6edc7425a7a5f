"""A trial scored by k-fold cross-validation (``tune.kfold=K``): its objective is the mean
fitness of the folds' best weights, reported after each fold so the pruner can stop a bad trial
before its other folds train.

The trial's folder is its k-fold folder (``trial_007/folds/``, ``trial_007/fold0/`` ...,
``summary.json`` once every fold ran), built by :func:`detforge.crossval.kfold.run_kfold`; the
fold split is the same for every trial (seed 0 and ``tune.kfold_group``), so trials differ only
by their settings.
"""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path
from typing import Any

from ..crossval.kfold import fold_results, run_kfold
from ..engine.fitness import fitness
from ..utils.atomic import write_text_atomic
from .trial import TrialOutcome

__all__ = ["run_kfold_trial"]

log = logging.getLogger("detforge")


def _mean_fitness(results: dict[int, dict], weights: dict[str, float]) -> float:
    values = [fitness(r["metrics"], weights) for r in results.values()]
    return sum(values) / len(values)


def run_kfold_trial(
    trial: Any,
    values: dict[str, Any] | Exception,
    run_dir: Path,
    k: int,
    fitness_weights: dict[str, float],
    group: str | None = None,
    cfg_file: str | None = None,
) -> TrialOutcome:
    """Train the trial's settings ``values`` fold by fold (or record ``values``, the error that
    made them invalid); report the running mean fitness after fold i as step i + 1."""
    t0 = time.perf_counter()
    details, epochs, mean = "", 0, None
    try:
        if isinstance(values, Exception):
            raise values
        for i in range(k):
            run_kfold(
                values, k, folds=[i], group=group, cfg_file=cfg_file, folder=run_dir
            )  # fmt: skip
            results = fold_results(run_dir, k)
            epochs = int(values.get("train.epochs", 0)) * len(results)
            mean = _mean_fitness(results, fitness_weights)
            trial.report(mean, i + 1)
            if i + 1 < k and trial.should_prune():
                reason = f"pruned after fold {i + 1} of {k}: mean fitness {mean:.5f}"
                outcome = TrialOutcome("pruned", mean, epochs, 0.0, i + 1, reason, run_dir)
                break
        else:
            reason = f"complete: mean fitness {mean:.5f} over {k} folds"
            outcome = TrialOutcome("complete", mean, epochs, 0.0, None, reason, run_dir)
    except Exception as e:
        details = "".join(traceback.format_exception(e))
        reason = f"failed: {type(e).__name__}: {e}"
        outcome = TrialOutcome("fail", None, epochs, 0.0, None, reason, run_dir)
        log.error("trial %d %s", trial.number, reason)
    outcome.seconds = time.perf_counter() - t0
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / "reason.txt", f"{outcome.reason}\n{details}")
    return outcome
