"""Learning-rate and momentum schedules as pure functions of the optimizer step.

Entry point: :func:`build_lr_schedule` maps ``RunConfig.schedule`` to an :class:`LRSchedule`;
the trainer calls ``schedule.apply(optimizer, step)`` before every optimizer step (``step`` =
optimizer steps already taken, 0-based) and, for ``plateau``, ``schedule.observe(value, step)``
after every validation.

Shape of every schedule: a warmup of ``W`` units, then the decay curve of ``schedule.name`` over
the remaining ``T = total - W`` units, exactly like PyTorch's
``SequentialLR([LinearLR(warmup_start_factor, total_iters=W), Main(T)], milestones=[W])``:
the curve's own time is ``t = unit - W`` (so ``step_size`` and ``milestones`` count epochs from
the end of warmup) and its value at ``t = T`` is the final one.

Units (``schedule.interval``):

- ``step``: one unit per optimizer step; epoch-valued settings are evaluated at fractional epoch
  positions. ``W = warmup_fraction * total_steps`` if set, else ``warmup_iters`` if set, else
  ``warmup_epochs * steps_per_epoch`` (products rounded half up).
- ``epoch``: one unit per epoch, so every value (warmup included) is constant within an epoch,
  as with PyTorch schedulers stepped once per epoch. ``W`` (``warmup_fraction * epochs`` or
  ``warmup_epochs``) must then be a whole number of epochs and ``warmup_iters`` unset (or 0).

Warmup (units ``u < W``), for a group with initial lr ``base``:

- ``linear``: ``base * (f + (1 - f) * u / W)`` with ``f = warmup_start_factor``;
  ``constant``: ``base * f``;
- bias groups (name ending in ``bias``), when ``warmup_bias_factor`` is set: a straight line
  from ``warmup_bias_factor * base`` at ``u = 0`` to the scheduled lr at ``u = W``. Relative to
  the group's lr, so it suits any optimizer and lr (the default 10 starts SGD's bias groups at
  0.1 for lr0 0.01, the value the old absolute ``warmup_bias_lr`` gave, bit for bit; an absolute
  0.1 started AdamW at lr0 1e-3 at 100x its lr);
- momentum (SGD / RMSprop ``momentum``, Adam-family ``beta1``): a straight line from
  ``min(warmup_momentum, momentum)`` to the optimizer's momentum, so warmup never raises
  momentum above the configured value (``optim.momentum=0`` stays 0 throughout).

A warmup longer than the run is allowed (the run ends inside it; short smoke tests do this).

``onecycle`` has its own warm phase (``pct_start``), so any other warmup is a configuration
error: set ``schedule.warmup_epochs=0``. Momentum is not cycled.

Group multipliers: every group's lr is its ``initial_lr`` (which already carries its lr
multiplier) times :meth:`LRSchedule.lr_factor`, so ratios between groups hold at every step
except inside the bias warmup. ``min_lr`` is the final lr of a group at ``lr0``; the others end
at ``min_lr`` times their multiplier.
"""

from __future__ import annotations

import dataclasses
import math

from ..config.fields import ConfigError
from ..config.metrics import resolve_mode
from ..config.schema import RunConfig, ScheduleSection
from .lr_schedule import LRSchedule, is_bias_group
from .plan import scaled_epochs
from .schedule_curves import DecayCurve
from .schedule_plateau import PlateauTracker

__all__ = ["LRSchedule", "build_lr_schedule", "build_schedule_from_config", "is_bias_group"]

# ReduceLROnPlateau ignores cuts smaller than this (absolute lr); converted to a multiplier of lr0
_PLATEAU_EPS = 1e-8


def _warmup_key(cfg: ScheduleSection) -> str:
    """The setting that decides the warmup length (for error messages)."""
    if cfg.warmup_fraction is not None:
        return "warmup_fraction"
    return "warmup_iters" if cfg.warmup_iters is not None else "warmup_epochs"


def _warmup_units(cfg: ScheduleSection, epochs: int, steps_per_epoch: int) -> int:
    """Warmup length in units; precedence warmup_fraction > warmup_iters > warmup_epochs."""
    if cfg.interval == "step":
        if cfg.warmup_fraction is not None:
            return math.floor(cfg.warmup_fraction * epochs * steps_per_epoch + 0.5)
        if cfg.warmup_iters is not None:
            return int(cfg.warmup_iters)
        return math.floor(cfg.warmup_epochs * steps_per_epoch + 0.5)
    key = _warmup_key(cfg)
    if key == "warmup_iters" and cfg.warmup_iters:
        raise ConfigError(
            f"schedule.warmup_iters: {cfg.warmup_iters} counts optimizer steps, but "
            "schedule.interval epoch warms up in whole epochs: set schedule.warmup_epochs instead"
        )
    warm = {
        "warmup_fraction": (cfg.warmup_fraction or 0.0) * epochs,
        "warmup_iters": 0.0,
        "warmup_epochs": cfg.warmup_epochs,
    }[key]
    whole = round(warm)
    if abs(warm - whole) > 1e-9 * max(1.0, warm):  # 0.1 x 30 is 3.0000000000000004
        raise ConfigError(
            f"schedule.{key}: a warmup of {warm:g} epochs is not a whole number of epochs, "
            "which schedule.interval epoch needs (or use schedule.interval step)"
        )
    return int(whole)


def _check(cfg: ScheduleSection, lr0: float, warm: int, length: int, per_epoch: int) -> None:
    """Settings that are valid one by one but not together, or not for this run's length."""
    if cfg.name == "onecycle" and warm > 0:
        raise ConfigError(
            f"schedule.{_warmup_key(cfg)}: onecycle warms up by itself (schedule.pct_start); "
            "set schedule.warmup_epochs=0 and leave warmup_iters and warmup_fraction unset"
        )
    if warm > 0 and cfg.warmup_method == "constant" and cfg.warmup_start_factor == 0:
        raise ConfigError(
            "schedule.warmup_start_factor: 0 with warmup_method constant would train nothing "
            "during warmup; give a factor in (0, 1]"
        )
    if cfg.min_lr is not None and cfg.min_lr > lr0:
        raise ConfigError(f"schedule.min_lr: {cfg.min_lr:g} is above optim.lr0 {lr0:g}")
    after = f" (counted from the end of the warmup of {warm / per_epoch:g} epochs)" if warm else ""
    last = (length - 1) / per_epoch  # epoch position of the last unit of the decay
    if cfg.name == "multistep":
        for m in cfg.milestones:
            if m <= 0:
                raise ConfigError(f"schedule.milestones: {m:g} is not a positive epoch")
            if m > last + 1e-9:
                raise ConfigError(
                    f"schedule.milestones: {m:g} is not before the end of the run at epoch "
                    f"{max(length, 0) / per_epoch:g}{after}: the lr would never decay there"
                )
    if cfg.name == "step" and cfg.step_size > last + 1e-9:
        raise ConfigError(
            f"schedule.step_size: {cfg.step_size:g} epochs is not shorter than the "
            f"{max(length, 0) / per_epoch:g} epochs of decay{after}: the lr would never decay"
        )
    if cfg.name == "plateau" and not cfg.monitor.strip():
        raise ConfigError("schedule.monitor: plateau needs a value to watch, e.g. val/loss")


def build_lr_schedule(
    cfg: ScheduleSection,
    *,
    lr0: float,
    momentum: float | None,
    epochs: int,
    steps_per_epoch: int,
) -> LRSchedule:
    """Validated :class:`LRSchedule` for ``cfg`` (``RunConfig.schedule``).

    lr0: base lr (``optim.lr0``), the reference of ``min_lr``. momentum: the optimizer's momentum
    or beta1 (``optim.momentum``), the end of the momentum warmup; None leaves momentum alone.
    epochs, steps_per_epoch: the run's length; ``steps_per_epoch`` counts *optimizer* steps (with
    gradient accumulation, batches per epoch / accumulate, rounded up).

    Raises :class:`~detforge.config.ConfigError` naming the ``schedule.*`` key at fault.
    """
    if epochs < 1 or steps_per_epoch < 1:
        raise ValueError(f"epochs ({epochs}) and steps_per_epoch ({steps_per_epoch}) must be >= 1")
    if lr0 <= 0:
        raise ConfigError(f"optim.lr0: {lr0:g} must be positive")
    per_epoch = steps_per_epoch if cfg.interval == "step" else 1
    warm = _warmup_units(cfg, epochs, steps_per_epoch)
    length = epochs * per_epoch - warm
    _check(cfg, lr0, warm, length, per_epoch)
    final = cfg.min_lr / lr0 if cfg.min_lr is not None else cfg.lrf
    curve = DecayCurve(
        name=cfg.name,
        length=max(length, 0),
        units_per_epoch=per_epoch,
        final=final,
        gamma=cfg.gamma,
        step_size=cfg.step_size,
        milestones=tuple(sorted(cfg.milestones)),
        power=cfg.power,
        pct_start=cfg.pct_start,
        div_factor=cfg.div_factor,
        final_div_factor=cfg.final_div_factor,
        anneal_shape=cfg.anneal,
    )
    plateau = None
    if cfg.name == "plateau":
        plateau = PlateauTracker(
            mode=resolve_mode(cfg.monitor, cfg.mode),
            factor=cfg.factor,
            patience=cfg.patience,
            cooldown=cfg.cooldown,
            threshold=cfg.threshold,
            threshold_mode=cfg.threshold_mode,
            floor=(cfg.min_lr or 0.0) / lr0,
            eps=_PLATEAU_EPS / lr0,
        )
    return LRSchedule(
        curve,
        interval=cfg.interval,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        warmup_units=warm,
        warmup_method=cfg.warmup_method,
        warmup_start_factor=cfg.warmup_start_factor,
        warmup_bias_factor=cfg.warmup_bias_factor,
        momentum=momentum,
        warmup_momentum=cfg.warmup_momentum,
        plateau=plateau,
        monitor=cfg.monitor if plateau is not None else None,
    )


def build_schedule_from_config(
    cfg: RunConfig, steps_per_epoch: int, epochs: int | None = None
) -> LRSchedule:
    """The ``schedule`` section, with ``optim.lr0``, ``optim.momentum`` and ``train.epochs``,
    over ``steps_per_epoch`` optimizer steps per epoch (the run plan's step grid).

    epochs: the fitted length of a ``train.time`` run (default ``train.epochs``). The curve then
    spans the fitted run and ends at its final lr at the fitted last step; ``step_size`` and
    ``milestones`` (positions in the run) are scaled by ``epochs / train.epochs``; the warmup
    keeps its length in epochs or steps (``warmup_fraction`` is a fraction of the fitted run),
    so re-fitting inside the warmup does not make the lr jump.
    """
    sched, configured = cfg.schedule, cfg.train.epochs
    if epochs is not None and epochs != configured:
        sched = dataclasses.replace(
            sched,
            step_size=scaled_epochs(sched.step_size, epochs, configured),
            milestones=[scaled_epochs(m, epochs, configured) for m in sched.milestones],
        )
    return build_lr_schedule(
        sched,
        lr0=cfg.optim.lr0,
        momentum=cfg.optim.momentum,
        epochs=configured if epochs is None else epochs,
        steps_per_epoch=steps_per_epoch,
    )
