"""Hooks: everything the training loop does besides data -> forward/backward -> step.

A hook subclasses :class:`Hook` and overrides the events it needs. Events, in the order the
trainer calls them::

    before_train                         after set-up (and resume), before the first epoch
    for each epoch:
        before_epoch                     trainer.epoch = epochs done so far (0-based index)
        for each optimizer step:
            before_step                  before the step's first micro-batch
            after_step                   after the optimizer step (trainer.step counts it)
        after_epoch                      trainer.epoch = epochs done (the 1-based number);
                                         trainer.row holds the epoch's results.csv row
    after_train                          after the last epoch (or an early stop)
    on_exception(trainer, exc)           instead of the rest when anything raises, then re-raised

At every event the built-in hooks of :func:`build_hooks` run first, in the order written there,
then the user's hooks in the order given (one exception: the epoch's final checkpoint is saved
after the user's after_epoch, so it holds their state). A hook with ``main_process_only = True``
(the default, and that of every user hook unless it sets the attribute to False) runs only on
the main process under torchrun. ``state_dict()`` / ``load_state_dict()`` are saved in every
checkpoint and restored on resume, keyed by class name (``Name#2`` for a second hook of the
same class).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..config import RunConfig

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["Hook", "HookList", "build_hooks", "hook_keys"]

log = logging.getLogger("detforge")


class Hook:
    """Base class of training hooks; every event does nothing unless overridden.

    What a hook may read on the trainer: ``cfg``, ``model``, ``eval_model()`` (the EMA when
    kept), ``optimizer``, ``schedule``, ``plan``, ``data``, ``epoch``, ``step``,
    ``batch_in_epoch``, ``step_losses`` and ``step_grad_norm`` (after_step: the step's mean
    loss terms and its gradient norm), ``row`` (after_epoch: this epoch's losses, lrs,
    gradient norms and, when validated, ``val/*``, ``metrics/*`` and ``fitness``),
    ``metrics``, ``best_epoch``, ``best_fitness``, ``run_dir``, ``is_main``. What it may
    change: add columns to ``row`` (in after_epoch, before ``ResultsHook`` writes it, i.e.
    only built-in hooks can; user hooks see the written row), and call
    ``trainer.request_stop(reason)`` to end training after
    the current epoch (all processes stop together).
    """

    main_process_only: bool = True

    def before_train(self, trainer: Trainer) -> None:
        pass

    def before_epoch(self, trainer: Trainer) -> None:
        pass

    def before_step(self, trainer: Trainer) -> None:
        pass

    def after_step(self, trainer: Trainer) -> None:
        pass

    def after_epoch(self, trainer: Trainer) -> None:
        pass

    def after_train(self, trainer: Trainer) -> None:
        pass

    def on_exception(self, trainer: Trainer, exc: BaseException) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        """What to keep in checkpoints (plain values and tensors only)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


def hook_keys(hooks: Sequence[Hook]) -> list[str]:
    """Stable checkpoint keys: the class name, ``#n`` for the n-th hook of the same class."""
    seen: dict[str, int] = {}
    keys = []
    for h in hooks:
        name = type(h).__name__
        seen[name] = seen.get(name, 0) + 1
        keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return keys


class HookList:
    """The hooks of one process: calls an event on those that run here, saves their state."""

    def __init__(self, hooks: Sequence[Hook], is_main: bool):
        for h in hooks:
            if not isinstance(h, Hook):
                raise TypeError(
                    f"hooks: {h!r} is not a detforge.Hook; subclass detforge.Hook and override "
                    "the events it needs (e.g. after_epoch(self, trainer))"
                )
        self.hooks = list(hooks)
        self.keys = hook_keys(self.hooks)
        self.active = [h for h in self.hooks if is_main or not h.main_process_only]

    def call(self, event: str, trainer: Trainer) -> None:
        for h in self.active:
            getattr(h, event)(trainer)

    def on_exception(self, trainer: Trainer, exc: BaseException) -> None:
        """Every hook sees the exception even if an earlier one fails on it (that is logged)."""
        for h in self.active:
            try:
                h.on_exception(trainer, exc)
            except Exception as e:
                log.error("%s.on_exception failed: %r", type(h).__name__, e)

    def state_dict(self) -> dict[str, dict]:
        return {k: h.state_dict() for k, h in zip(self.keys, self.hooks, strict=True)}

    def load_state_dict(self, states: Mapping[str, Mapping], source: str) -> None:
        by_key = dict(zip(self.keys, self.hooks, strict=True))
        absent = sorted(set(states) - set(by_key))
        if absent:
            log.warning(
                "%s holds state of hook(s) %s that this run does not have; it is ignored",
                source,
                ", ".join(absent),
            )
        for key, state in states.items():
            if key in by_key and state:
                by_key[key].load_state_dict(state)


def build_hooks(cfg: RunConfig, user_hooks: Iterable[Hook] = ()) -> list[Hook]:
    """The built-in hooks in the order they must run, then ``user_hooks``.

    Order, and why each sits where it does:

    0. TimeBudgetHook (only with ``train.time``; all processes): first, so its after_epoch
       fits the epoch count (and re-plans) before the epoch's validation and checkpoints,
       which then know whether this epoch is the last and save the fitted plan. A
       TimeBudgetHook among ``user_hooks`` takes its place (e.g. one with another clock).
    1. FreezeHook (before_epoch, all processes): unfreeze at ``optim.unfreeze_at`` and keep
       frozen BatchNorm statistics fixed before the epoch's first batch.
    2. StageHook (before_epoch, all): switch to the epoch's ``train.stages`` size and batch
       before its loader is read.
    3. LastCheckpointHook (after_epoch, main): ``last.pt`` before validation, so a failing
       validation still leaves a checkpoint; on_exception: ``last.pt`` at the last whole step.
    4. ValidationHook (after_epoch, main): validate, add val/* and metrics/* to the row,
       fitness, best epoch.
    5. PlateauHook (after_epoch, all): the main process's monitored value is broadcast and
       every process applies the same plateau decision; after validation, which produces it.
    6. EarlyStopHook (after_epoch, main): after the plateau decision (both read the same
       validation); the trainer broadcasts the stop so all processes end together.
    7. ResultsHook (after_epoch, main): the row goes to ``results.csv`` once every hook before
       has added its columns.
    8. FinishHook (after_train, main): validate ``best.pt``, per-class table, predictions json,
       report.
    9. the user's hooks, in the order given.
    10. EpochCheckpointHook (after_epoch, main): the epoch's final ``last.pt``, ``best.pt`` when
        fitness improved, ``epochN.pt`` per ``train.save_period``; after fitness and both
        decisions, and the one built-in hook after the user's, so these files hold the state
        every hook (the user's too) reached in the epoch.
    """
    from .budget import TimeBudgetHook
    from .train_hooks import (
        EarlyStopHook,
        EpochCheckpointHook,
        FinishHook,
        FreezeHook,
        LastCheckpointHook,
        PlateauHook,
        ResultsHook,
        StageHook,
        ValidationHook,
    )

    user_hooks = list(user_hooks)
    budget = [h for h in user_hooks if isinstance(h, TimeBudgetHook)]
    if not budget and cfg.train.time is not None:
        budget = [TimeBudgetHook(cfg.train.time * 3600)]
    return [
        *budget,
        FreezeHook(),
        StageHook(),
        LastCheckpointHook(),
        ValidationHook(),
        PlateauHook(),
        EarlyStopHook(cfg),
        ResultsHook(),
        FinishHook(),
        *(h for h in user_hooks if not isinstance(h, TimeBudgetHook)),
        EpochCheckpointHook(),
    ]
