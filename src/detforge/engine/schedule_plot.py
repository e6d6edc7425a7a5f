"""Draw the learning-rate curve of every parameter group without training (``detforge schedule``).

Only the schedule and the run's length are needed: ``steps_per_epoch`` is given by the caller
(the CLI computes it from the dataset size, the batch and the accumulation), so no data is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..config.schema import ScheduleSection
from .lr_schedule import LRSchedule
from .schedule import build_lr_schedule

__all__ = ["ScheduleCurves", "sample_schedule", "plot_schedule"]

# Curves longer than this are drawn from evenly spaced steps (a PNG cannot show more points)
MAX_POINTS = 20_000


@dataclass
class ScheduleCurves:
    """What was drawn: ``lrs[group]`` and ``momentum`` at optimizer ``steps`` (``epochs`` =
    ``steps / steps_per_epoch``, the x axis)."""

    steps: list[int]
    epochs: list[float]
    lrs: dict[str, list[float]] = field(default_factory=dict)
    momentum: list[float | None] = field(default_factory=list)


def _sample_steps(total: int, max_points: int) -> list[int]:
    if total <= max_points:
        return list(range(total))
    return sorted({round(i * (total - 1) / (max_points - 1)) for i in range(max_points)})


def sample_schedule(
    schedule: LRSchedule,
    groups: Sequence[tuple[str, float, bool]],
    lr0: float,
    max_points: int = MAX_POINTS,
) -> ScheduleCurves:
    """lr of every group at every optimizer step of the run (evenly spaced steps if too many).

    groups: ``(name, lr multiplier, is_bias)``; a group's initial lr is ``lr0 * multiplier``.
    """
    steps = _sample_steps(schedule.total_steps, max_points)
    spe = schedule.steps_per_epoch
    curves = ScheduleCurves(steps=steps, epochs=[s / spe for s in steps])
    for name, mult, is_bias in groups:
        curves.lrs[name] = [schedule.lr(s, lr0 * mult, is_bias) for s in steps]
    curves.momentum = [schedule.momentum_at(s) for s in steps]
    return curves


def plot_schedule(
    cfg: ScheduleSection,
    *,
    lr0: float,
    epochs: int,
    steps_per_epoch: int,
    out_png: str | Path,
    groups: Sequence[tuple[str, float, bool]] = (("weights", 1.0, False), ("bias", 1.0, True)),
    momentum: float | None = None,
) -> ScheduleCurves:
    """Write the lr curve of every group (and the momentum, if given) to ``out_png``.

    cfg: ``RunConfig.schedule``; lr0, momentum: ``optim.lr0`` / ``optim.momentum``; groups:
    ``(name, lr multiplier, is_bias)`` for each parameter group. A plateau schedule is drawn as
    if no cut ever happens (the title says so). Returns the plotted values.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    schedule = build_lr_schedule(
        cfg, lr0=lr0, momentum=momentum, epochs=epochs, steps_per_epoch=steps_per_epoch
    )
    curves = sample_schedule(schedule, groups, lr0)
    has_momentum = momentum is not None
    # a bare Figure with the Agg canvas: no pyplot state, no GUI backend, bundled DejaVu fonts
    fig = Figure(figsize=(8, 6 if has_momentum else 4.5), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2 if has_momentum else 1, 1, sharex=True, squeeze=False)[:, 0]
    ax = axes[0]
    for (name, _, is_bias), values in zip(groups, curves.lrs.values(), strict=True):
        # bias groups coincide with their weights after warmup: dashed, so both stay visible
        ax.plot(curves.epochs, values, label=name, lw=1.2, ls="--" if is_bias else "-")
    positive = [v for values in curves.lrs.values() for v in values if v > 0]
    if positive and max(positive) > 50 * min(positive):
        ax.set_yscale("log")  # decays over decades (and 0.1x groups) are invisible on a linear axis
    if schedule.warmup_steps:
        ax.axvline(schedule.warmup_steps / steps_per_epoch, color="0.6", linestyle=":", lw=1)
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    title = f"{cfg.name} schedule, lr0 {lr0:g}, interval {cfg.interval}"
    if schedule.needs_metric:
        title += f"\n(drawn without any plateau cut: they depend on {cfg.monitor})"
    ax.set_title(title, fontsize=10)
    if has_momentum:
        axes[1].plot(curves.epochs, curves.momentum, color="tab:gray", linewidth=1.2)
        axes[1].set_ylabel("momentum / beta1")
        axes[1].grid(alpha=0.3)
    axes[-1].set_xlabel(f"epoch ({steps_per_epoch} optimizer steps each)")
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, format="png")
    return curves
