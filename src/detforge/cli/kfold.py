"""``detforge kfold``: k-fold cross-validation, one training run per fold, and its summary."""

from __future__ import annotations

from collections.abc import Sequence

from ..config.fields import ConfigError
from .spec import Arg, Command, parse

__all__ = ["COMMAND", "run"]

COMMAND = Command(
    "kfold",
    "K-fold cross-validation: folds stratified by class (lists of image paths, no copies) in "
    "<project>/kfold/<name>/folds/, one run per fold, then mean +- std of every metric, a "
    "pooled out-of-fold COCO evaluation, summary.json/csv and folds.png. Running it again "
    "skips finished folds and resumes an interrupted one.",
    "detforge kfold data=data.yaml [k=5] [seed=0] [group=REGEX] [folds=0,2] [pool=true] "
    "[aggregate=true] [name=cv] [settings]",
    (
        Arg("k", int, 5, "number of folds", check=lambda v: v >= 2, rule="must be at least 2"),
        Arg("seed", int, 0, "seed of the fold split (training's own seed is train.seed)"),
        Arg("group", str, None, "regex over file names: images with the same match share a fold"),
        Arg("folds", str, None, "comma-separated folds to run (default all), e.g. 0,2"),
        Arg("pool", bool, True, "split train and val of the data.yaml together"),
        Arg("aggregate", bool, False, "only summarize the folds already run"),
        Arg("name", str, "cv", "the k-fold folder: <train.project>/kfold/<name>"),
        Arg("cfg", str, None, "settings file (YAML)"),
    ),
)


def _folds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise ConfigError(
            f"detforge kfold: folds: expected fold numbers like 0,2, got {text!r}"
        ) from None


def run(args: Sequence[str]) -> int:
    from ..crossval.kfold import run_kfold

    p = parse(COMMAND, args)
    a = p.special
    result = run_kfold(
        p.settings, a["k"], name=a["name"], seed=a["seed"], group=a["group"],
        folds=_folds(a["folds"]), pool=a["pool"], aggregate=a["aggregate"], cfg_file=a["cfg"],
    )  # fmt: skip
    if result.summary is None:
        print(f"kfold: folds {result.ran} done in {result.folder}; the others still to run")
    else:
        print(f"kfold: summary in {result.folder / 'summary.json'}")
    return 0
