"""``detforge schedule``: plot the learning rate of every parameter group over the run."""

from __future__ import annotations

from collections.abc import Sequence

from .spec import Arg, Command, parse

COMMAND = Command(
    "schedule",
    "Plot the learning rate (and momentum) of every parameter group over the configured run.",
    "detforge schedule [settings] [out=lr_schedule.png]",
    (
        Arg("cfg", str, None, "settings file (YAML)"),
        Arg("out", str, "lr_schedule.png", "PNG to write"),
    ),
)


def run(args: Sequence[str]) -> int:
    from ..config import load_config
    from ..engine.tools import plot_schedule_from_config

    p = parse(COMMAND, args)
    cfg = load_config(p.settings, cfg_file=p.special["cfg"])
    out = plot_schedule_from_config(cfg, p.special["out"])
    print(f"learning-rate curves written to {out}")
    return 0
