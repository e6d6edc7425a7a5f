"""``train.time``: fit the number of epochs to a wall-clock budget (a hook on the run plan).

The budget counts from the start of training (``before_train``: after the data, model and
optimizer are built) and goes on across a resume (the seconds used are in every checkpoint).
``train.epochs`` is an upper bound: the budget shortens a run, never lengthens it beyond
``train.epochs`` (give a large ``epochs`` to let the budget alone decide).

Each epoch splits at this hook's ``after_epoch`` (the first of the after_epoch hooks) into a
*training* part (``before_epoch`` to there) and an *overhead* part (validation, checkpoints,
results.csv: from there to the next ``before_epoch``). After every epoch's training, before
its validation, the run is fitted again::

    done   = epochs trained so far
    train  = mean training seconds of the last ``window`` whole epochs
    over   = mean overhead seconds of the last ``window`` epochs; after the first epoch, not
             measured yet, it is estimated as train x val images / train images (a forward
             pass costs less than a forward-backward one, so this overestimates it)
    worst  = the largest overhead measured (or that estimate)
    left   = budget - used - 2 x worst   (this epoch's validation and checkpoints, and the
                                          final re-validation of best.pt with the report)
    fitted = done + floor(left / (train + over)), clamped to [done, train.epochs]

Drift: ``window = max(3, train.val_interval)`` epochs, a moving window, so a machine that got
busier (or a later stage at a larger image size) shows in the next fit within a few epochs,
and it spans a whole validation cycle. The plan follows every fit both ways, with no
hysteresis: the first fit's overhead estimate is pessimistic, and later fits must win those
epochs back (noise can move the count by one epoch and back; each move only re-stretches the
rest of the schedule). Every fit whose count differs from the plan's rebuilds
the plan (:func:`~detforge.engine.plan.plan_run` with ``epochs=fitted``: close_mosaic and the
stages scaled to it) and the lr schedule over it (which then ends at its final lr at the
fitted last step; the warmup keeps its length). ``fitted == done`` makes this epoch the last:
it is validated and checkpointed like any last epoch, so the last epoch is never cut in the
middle and the run ends with its final validation and checkpoints. The first epoch always
runs whole, even if it alone takes longer than the budget (the run then ends after it, with a
warning).

Resume: the fitted count, the seconds used and the measured epochs are this hook's state,
saved in every checkpoint; ``before_train`` re-plans a resumed run to the saved count, so it
continues the same plan and schedule (the checkpoint of an epoch's end holds the plan fitted
in that epoch). An epoch resumed in its middle is not measured.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .distributed import broadcast_object
from .hooks import Hook
from .plan import plan_run
from .schedule import build_schedule_from_config
from .setup_data import build_train_loader

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["TimeBudgetHook", "fit_epochs", "replan"]

log = logging.getLogger("detforge")


def fit_epochs(
    budget: float,
    used: float,
    done: int,
    train_seconds: list[float],
    overhead_seconds: list[float],
    max_epochs: int,
) -> int:
    """Epochs that fit in ``budget`` seconds after ``done`` epochs and ``used`` seconds (see the
    module doc); ``train_seconds`` / ``overhead_seconds`` are the recent epochs' measurements
    (``overhead_seconds`` holds at least one value, measured or estimated)."""
    train = sum(train_seconds) / len(train_seconds)
    over = sum(overhead_seconds) / len(overhead_seconds)
    left = budget - used - 2 * max(overhead_seconds)
    per_epoch = max(train + over, 1e-9)
    more = math.floor(left / per_epoch) if left > 0 else 0
    return max(done, min(done + more, max_epochs))


def replan(tr: Trainer, epochs: int) -> None:
    """Re-plan ``tr`` to ``epochs``: the plan, the lr schedule over it (its plateau state kept)
    and the epoch where close_mosaic starts (loader workers hold a copy of the dataset, so the
    loader is rebuilt when that epoch moves)."""
    tr.plan = plan_run(tr.cfg, len(tr.data.train_set), tr.dist.world_size, epochs=epochs)
    schedule = build_schedule_from_config(tr.cfg, tr.plan.steps_per_epoch, epochs)
    schedule.load_state_dict(tr.schedule.state_dict())
    tr.schedule = schedule
    d = tr.data
    if d.train_set.mosaic_until_epoch != tr.plan.mosaic_until:
        d.train_set.mosaic_until_epoch = tr.plan.mosaic_until
        if d.workers > 0:
            batch = d.train_loader.batch_size  # the stage's; StageHook changes it when due
            d.train_loader = build_train_loader(
                tr.cfg, d.train_set, d.train_sampler, batch, d.workers
            )


class TimeBudgetHook(Hook):
    """``train.time``: fit the epoch count to ``seconds`` of wall-clock time (module doc).

    clock: seconds, monotonic (``time.monotonic``; tests pass a fake one). A TimeBudgetHook
    given in ``Trainer(cfg, hooks=[...])`` takes the place of the built-in one.
    """

    main_process_only = False  # every process re-plans; rank 0's fit is broadcast

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        if not seconds > 0:
            raise ValueError(f"train.time: the budget must be positive, got {seconds / 3600:g} h")
        self.budget, self.clock = float(seconds), clock
        self.used_before = 0.0  # seconds used by earlier sessions of a resumed run
        self.train_seconds: list[float] = []
        self.overhead_seconds: list[float] = []
        self.fitted: int | None = None
        self.session_start = self.epoch_start = self.fit_time = None
        self.window = 3

    def used(self) -> float:
        start = self.session_start
        return self.used_before + (self.clock() - start if start is not None else 0.0)

    # ------------------------------------------------------------------ events
    def before_train(self, tr: Trainer) -> None:
        self.session_start = self.clock()
        self.window = max(3, tr.cfg.train.val_interval)
        if self.fitted is not None:  # resumed: continue the saved plan
            fitted = min(self.fitted, tr.cfg.train.epochs)
            if fitted != tr.plan.epochs:
                replan(tr, fitted)
            if tr.is_main:
                log.info(
                    "train.time: resumed with %.0f of %.0f s used, %d epochs planned",
                    self.used_before, self.budget, fitted,
                )  # fmt: skip

    def before_epoch(self, tr: Trainer) -> None:
        now = self.clock()
        if self.fit_time is not None:
            self.overhead_seconds.append(now - self.fit_time)
        # an epoch resumed in its middle is not a whole epoch's time
        self.epoch_start = now if tr.batch_in_epoch == 0 else None
        self.fit_time = None

    def after_epoch(self, tr: Trainer) -> None:
        now = self.clock()
        if self.epoch_start is not None:
            self.train_seconds.append(now - self.epoch_start)
        self.fit_time = now
        fitted = self._fit(tr) if tr.is_main else None
        fitted = broadcast_object(fitted, tr.dist)
        if fitted is None:
            return
        self.fitted = fitted
        if fitted != tr.plan.epochs:
            replan(tr, fitted)

    def after_train(self, tr: Trainer) -> None:
        if tr.is_main:
            log.info(
                "train.time: %.0f of %.0f s used by the epochs; the final validation of best.pt "
                "follows", self.used(), self.budget,
            )  # fmt: skip

    # ------------------------------------------------------------------ fit
    def _fit(self, tr: Trainer) -> int | None:
        w = self.window
        train = self.train_seconds[-w:]
        if not train:
            return None  # no whole epoch measured yet in this session's data
        over = self.overhead_seconds[-w:]
        if not over:
            ratio = len(tr.data.val_set) / max(len(tr.data.train_set), 1)
            over = [sum(train) / len(train) * ratio]
        used = self.used()
        fitted = fit_epochs(self.budget, used, tr.epoch, train, over, tr.cfg.train.epochs)
        if fitted != tr.plan.epochs:
            log.info(
                "train.time: %.0f of %.0f s used; an epoch takes ~%.1f s training + %.1f s "
                "validation and checkpoints: %d epochs in all (was %d)",
                used, self.budget, sum(train) / len(train), sum(over) / len(over), fitted,
                tr.plan.epochs,
            )  # fmt: skip
        if fitted == tr.epoch and used + 2 * max(over) > self.budget:
            log.warning(
                "train.time: the budget of %.0f s is used up after epoch %d (%.0f s used): "
                "this epoch is the last", self.budget, tr.epoch, used,
            )  # fmt: skip
        return fitted

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "used": self.used(),
            "fitted": self.fitted,
            "train_seconds": list(self.train_seconds),
            "overhead_seconds": list(self.overhead_seconds),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.used_before = float(state["used"])
        self.fitted = state["fitted"]
        self.train_seconds = list(state["train_seconds"])
        self.overhead_seconds = list(state["overhead_seconds"])
