"""Resuming: the configuration a resumed run trains with, its run folder, what it re-plans.

``train.resume`` may come from any configuration layer (a ``cfg=`` file, a ``DETFORGE_*``
variable, an argument, the Python API): wherever it comes from, the checkpoint's saved
configuration becomes the base and every layer the user gave is applied on top of it again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..config import RunConfig, config_to_dict, load_config
from .checkpoint import load_checkpoint, saved_config
from .plan import RunPlan
from .rundir import make_run_dir

__all__ = ["load_train_config", "resume_run_dir", "describe_replan"]

log = logging.getLogger("detforge")


def load_train_config(
    overrides: Iterable[str] | Mapping[str, Any] = (),
    cfg_file: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    notes: list[tuple[int, str]] | None = None,
) -> RunConfig:
    """:func:`~detforge.config.load_config`, on top of the checkpoint's configuration when any
    layer sets ``train.resume``. ``notes`` receives the loader's notes of the final config."""
    overrides = overrides if isinstance(overrides, Mapping) else list(overrides)
    first: list[tuple[int, str]] = []
    cfg = load_config(overrides, cfg_file=cfg_file, env=env, notes=first)
    if not cfg.train.resume:
        if notes is None:  # as load_config does without ``notes``: log them
            for level, line in first:
                log.log(level, line)
        else:
            notes.extend(first)
        return cfg
    base = saved_config(load_checkpoint(cfg.train.resume))
    return load_config(overrides, cfg_file=cfg_file, env=env, base=base, notes=notes)


def resume_run_dir(ckpt_path: str | os.PathLike, ckpt: dict, cfg: RunConfig) -> tuple[Path, bool]:
    """The folder a resumed run writes to, and whether it is the checkpoint's own run.

    A checkpoint continues its run when it still sits in that run's ``weights/`` folder (the
    run folder saved in it, or, for format-1 checkpoints, a folder with a ``config.yaml``);
    a loose or moved checkpoint starts a new run folder (``train.project`` / ``train.name``).
    """
    path = Path(ckpt_path).resolve()
    folder = path.parent.parent
    saved = ckpt.get("run_dir")
    if saved is not None:
        own = path.parent.name == "weights" and Path(saved).resolve() == folder
    else:
        own = path.parent.name == "weights" and (folder / "config.yaml").is_file()
    if own and folder.is_dir():
        return folder, True
    new = make_run_dir(cfg.train.project, cfg.train.name, cfg.train.exist_ok)
    log.warning(
        "resume: %s is not in the weights/ folder of its run (%s); continuing in a new run "
        "folder %s (results.csv starts at the resumed epoch, best.pt is tracked from there)",
        path, saved or folder, new,
    )  # fmt: skip
    return new, False


def describe_replan(saved_config: Mapping[str, Any], cfg: RunConfig, plan: RunPlan) -> str:
    """A log line naming what a resume changes in the run's length or schedule ('' if none)."""
    now = config_to_dict(cfg)
    changes = []
    for section, keys in (("train", ("epochs", "stages")), ("schedule", None)):
        old_sec, new_sec = saved_config.get(section, {}), now[section]
        for key in keys or new_sec:
            if key in old_sec and old_sec[key] != new_sec[key]:
                changes.append(f"{section}.{key} {old_sec[key]} -> {new_sec[key]}")
    if not changes:
        return ""
    return (
        f"resume: {', '.join(changes)}; the schedule is re-planned: {plan.epochs} epochs of "
        f"{plan.steps_per_epoch} optimizer steps ({plan.schedule_steps} in all)"
    )
