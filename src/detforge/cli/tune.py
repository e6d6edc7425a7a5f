"""``detforge tune``: hyperparameter search on Optuna (``workers=K`` runs K local processes)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Sequence

from ..config.fields import ConfigError
from .spec import REQUIRED, Arg, Command, parse

# a spawned worker's index; the config loader does not read it as a setting
WORKER_ENV = "DETFORGE_TUNE_WORKER"


def _positive(v: int) -> bool:
    return v > 0


COMMAND = Command(
    "tune",
    "Hyperparameter search: every trial is a run folder under runs/tune/<study>/; writes "
    "trials.csv, best.yaml and plots. Re-running the same command resumes the study.",
    "detforge tune space=space.yaml|NAME [trials=N] [timeout=2h] [workers=K] [storage=URL] "
    "[study=NAME] [sampler=tpe|random|grid|cmaes] [pruner=hyperband|median|sha|none] "
    "[tune.epochs=E] [tune.fraction=F] [tune.imgsz=N] [final=true] [settings]",
    (
        Arg("cfg", str, None, "settings file (YAML) of every trial"),
        Arg(
            "space",
            str,
            REQUIRED,
            "search space: a YAML file or a shipped space (detforge spaces)",
            example="space=grid-lr-warmup",
        ),  # fmt: skip
        Arg(
            "trials",
            int,
            None,
            "trials in all, over every worker (default: a grid's size)",
            check=_positive,
            rule="must be a positive integer",
        ),  # fmt: skip
        Arg("timeout", str, None, "start no trial after this long: 90s, 30m, 2h (or seconds)"),
        Arg(
            "workers",
            int,
            1,
            "local worker processes sharing the study (data loader workers: data.workers=)",
            check=_positive,
            rule="must be a positive integer",
        ),  # fmt: skip
        Arg(
            "storage",
            str,
            None,
            "Optuna RDB storage URL: postgresql://..., sqlite:///... (default: journal.log in "
            "the study folder)",
        ),  # fmt: skip
        Arg("study", str, None, "study name and folder (default: the space's name)"),
        Arg(
            "sampler",
            str,
            None,
            "tpe, random, grid or cmaes (default: grid for a grid space, else tpe)",
        ),  # fmt: skip
        Arg("pruner", str, "hyperband", "hyperband, median, sha or none"),
        Arg(
            "tune.epochs",
            int,
            None,
            "epochs per trial (default: the settings' epochs; best.yaml keeps those)",
            check=_positive,
            rule="must be a positive integer",
        ),  # fmt: skip
        Arg(
            "tune.fraction",
            float,
            None,
            "trials train on this class-stratified fraction of the images (best.yaml: all)",
            check=lambda v: 0 < v <= 1,
            rule="must be in (0, 1]",
        ),  # fmt: skip
        Arg(
            "tune.imgsz",
            int,
            None,
            "trials train and validate at this image size (best.yaml: the settings' imgsz)",
            check=lambda v: v >= 32 and v % 32 == 0,
            rule="must be a positive multiple of the model stride 32",
        ),  # fmt: skip
        Arg(
            "tune.kfold",
            int,
            None,
            "score each trial by K-fold cross-validation (mean fitness, pruned after a fold)",
            check=lambda v: v >= 2,
            rule="must be at least 2",
        ),  # fmt: skip
        Arg("tune.kfold_group", str, None, "with tune.kfold: file-name regex kept in one fold"),
        Arg(
            "final",
            bool,
            False,
            "once the study has its trials, retrain the best at the full budget into "
            "runs/tune/<study>/final/ and validate it (one worker does it)",
        ),  # fmt: skip
        Arg(
            "tune.heartbeat",
            int,
            None,
            "storage=URL: seconds between a running trial's heartbeats (default 60); a trial "
            "silent for twice as long is failed and retried once",
            check=_positive,
            rule="must be a positive integer",
        ),  # fmt: skip
    ),
)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``2h``, ``1.5h`` or plain seconds -> seconds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smhd]?)\s*", text)
    if not m or float(m[1]) <= 0:
        raise ConfigError(f"detforge tune: timeout: expected e.g. 90s, 30m or 2h, got {text!r}")
    return float(m[1]) * _UNITS[m[2] or "s"]


def run(args: Sequence[str]) -> int:
    from ..tune.space import load_space
    from ..tune.study import TuneOptions, Tuner

    p = parse(COMMAND, args)
    s = p.special
    opts = TuneOptions(
        load_space(s["space"]), p.settings, s["cfg"], s["trials"],
        parse_duration(s["timeout"]) if s["timeout"] else None, s["storage"], s["study"],
        s["sampler"], s["pruner"], s["tune.epochs"], s["tune.fraction"], s["tune.imgsz"],
        s["tune.kfold"], s["tune.kfold_group"], s["tune.heartbeat"], s["final"],
    )  # fmt: skip
    worker = int(os.environ.get(WORKER_ENV, "0"))
    tuner = Tuner(opts, worker=worker)
    tuner.open()  # created before the other workers start, so they load the same study
    children = []
    if worker == 0 and s["workers"] > 1:
        argv = [a for a in args if not a.startswith("workers=")] + ["workers=1"]
        for i in range(1, s["workers"]):
            env = {**os.environ, WORKER_ENV: str(i)}
            cmd = [sys.executable, "-m", "detforge.cli", "tune", *argv]
            children.append(subprocess.Popen(cmd, env=env))
    try:
        tuner.run()
    finally:
        failed = [c.args for c in children if c.wait() != 0]
    if worker != 0:
        return 0
    final = tuner.final() if s["final"] else None
    print("\n" + "\n".join(tuner.finish()))
    if final is not None and final["state"] == "fail":
        print(f"detforge tune: the final run {final['reason']}", file=sys.stderr)
        return 1
    if failed:
        print(f"detforge tune: {len(failed)} worker process(es) failed", file=sys.stderr)
        return 1
    return 0
