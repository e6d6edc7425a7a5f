"""``detforge lr-find``: learning-rate range test on the training data."""

from __future__ import annotations

from collections.abc import Sequence

from .spec import Arg, Command, parse


def _positive(v: float) -> bool:
    return v > 0


_RULE = "must be a positive number"
COMMAND = Command(
    "lr-find",
    "Exponential learning-rate sweep; writes lr_find.png and lr_find.csv and suggests optim.lr0.",
    "detforge lr-find data=... [iters=100] [start_lr=1e-7] [end_lr=1.0] [settings]",
    (
        Arg("cfg", str, None, "settings file (YAML)"),
        Arg("iters", int, 100, "optimizer steps of the sweep", check=_positive, rule=_RULE),
        Arg("start_lr", float, 1e-7, "first learning rate", check=_positive, rule=_RULE),
        Arg("end_lr", float, 1.0, "last learning rate", check=_positive, rule=_RULE),
    ),
)


def run(args: Sequence[str]) -> int:
    from ..config import load_config
    from ..engine.tools import lr_find_from_config

    p = parse(COMMAND, args)
    cfg = load_config(["train.name=lr_find", *p.settings], cfg_file=p.special["cfg"])
    kw = {k: v for k, v in p.special.items() if k != "cfg"}
    result, out = lr_find_from_config(cfg, **kw)
    lr = f"{result.suggestion:.3g}" if result.suggestion else "none (too few points)"
    stop = " (stopped early: the loss diverged)" if result.stopped_early else ""
    print(f"{len(result.lrs)} steps{stop}; suggested optim.lr0: {lr}; plot: {out / 'lr_find.png'}")
    return 0
