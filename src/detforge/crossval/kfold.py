"""K-fold cross-validation: one ordinary training run per fold, then a summary over folds.

The k-fold folder ``<train.project>/kfold/<name>/`` holds ``folds/`` (written once by
:func:`detforge.data.folds.load_or_write_folds`), one run folder per fold (``fold<i>/``, the
same :class:`~detforge.engine.trainer.Trainer` as ``detforge train``, on ``folds/fold<i>/
data.yaml``) and the summary (crossval/summary.py). A fold is finished when its run folder
holds ``fold_result.json`` (written after its training returns); running again skips finished
folds and resumes an unfinished one from its ``weights/last.pt`` (``train.resume``), so folds
can run in separate processes or machines (``folds=0,2``) and be aggregated afterwards.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError, RunConfig
from ..data.folds import FoldSplit, fold_data_yaml, load_or_write_folds
from ..engine.hooks import Hook
from ..engine.preflight import check_before_data
from ..engine.resume import load_train_config
from ..engine.trainer import Trainer
from ..track import tracking_hooks
from ..utils.atomic import write_json_atomic

__all__ = ["KFoldResult", "kfold_dir", "run_kfold", "fold_results"]

log = logging.getLogger("detforge")

RESULT_FILE = "fold_result.json"


@dataclass
class KFoldResult:
    folder: Path
    k: int
    ran: list[int]  # folds trained (or resumed) by this call
    skipped: list[int]  # folds already finished
    summary: dict | None  # crossval.summary.summarize(), once every fold is finished


def kfold_dir(cfg: RunConfig, name: str) -> Path:
    return Path(cfg.train.project) / "kfold" / name


def fold_results(folder: Path, k: int) -> dict[int, dict]:
    """{fold: its fold_result.json} of the finished folds."""
    out = {}
    for i in range(k):
        f = folder / f"fold{i}" / RESULT_FILE
        if f.is_file():
            out[i] = json.loads(f.read_text(encoding="utf-8"))
    return out


def _fold_config(
    settings: Sequence[str] | Mapping[str, object], cfg_file: str | None, folder: Path, i: int
) -> tuple[RunConfig, bool]:
    """The fold's configuration, and whether it resumes an interrupted run."""
    last = folder / f"fold{i}" / "weights" / "last.pt"
    if last.is_file():
        return load_train_config([f"train.resume={last}"]), True
    fold = {
        "data.path": str(fold_data_yaml(folder / "folds", i)),
        "train.project": str(folder),
        "train.name": f"fold{i}",
        "train.exist_ok": True,
    }
    if isinstance(settings, Mapping):
        cfg = load_train_config({**settings, **fold}, cfg_file=cfg_file)
    else:
        fold_args = [f"{key}={value}" for key, value in fold.items()]
        cfg = load_train_config([*settings, *fold_args], cfg_file=cfg_file)
    check_before_data(cfg)
    return cfg, False


def _parse_folds(folds: Iterable[int] | None, k: int) -> list[int]:
    chosen = sorted(set(range(k) if folds is None else folds))
    bad = [f for f in chosen if not 0 <= f < k]
    if bad:
        raise ConfigError(f"folds: {bad} out of range for k={k} (folds are 0..{k - 1})")
    return chosen


def run_kfold(
    settings: Sequence[str] | Mapping[str, object] = (),
    k: int = 5,
    *,
    name: str = "cv",
    seed: int = 0,
    group: str | None = None,
    folds: Iterable[int] | None = None,
    pool: bool = True,
    aggregate: bool = False,
    cfg_file: str | None = None,
    hooks: Sequence[Hook] = (),
    folder: Path | None = None,
) -> KFoldResult:
    """Train the folds ``folds`` (all by default) of a k-fold split and summarize when every
    fold is finished.

    settings: training settings as ``key=value`` (``data=`` is the dataset to split); seed:
    the split's seed (training's is ``train.seed``); group: a regex over file names whose
    match keeps images in one fold; pool: split train and val of the data.yaml together;
    aggregate: only summarize folds already run (an error names the missing ones); hooks:
    extra :class:`~detforge.engine.hooks.Hook` instances of every fold's run; folder: the
    k-fold folder instead of ``<train.project>/kfold/<name>`` (a tune trial's own folder).
    """
    if k < 2:
        raise ConfigError(f"k: at least 2 folds, got {k}")
    base = load_train_config(settings, cfg_file=cfg_file)
    if base.train.resume:
        raise ConfigError(
            "kfold: train.resume is not a k-fold setting; run the same kfold command again "
            "to resume its unfinished folds"
        )
    if not base.data.path:
        raise ConfigError("kfold: data= is required (a data.yaml to split into folds)")
    if base.train.task == "classify":
        raise ConfigError(
            "train.task: kfold splits the images of a detection data.yaml into folds; "
            "task=classify is not supported by kfold"
        )
    folder = Path(folder) if folder is not None else kfold_dir(base, name)
    split: FoldSplit = load_or_write_folds(
        folder / "folds", base.data.path, k, seed=seed, group=group, pool=pool
    )
    done = fold_results(folder, k)
    ran: list[int] = []
    skipped: list[int] = []
    if not aggregate:
        for i in _parse_folds(folds, k):
            if i in done:
                log.info("kfold: fold %d/%d already finished, skipped", i + 1, k)
                skipped.append(i)
                continue
            cfg, resumed = _fold_config(settings, cfg_file, folder, i)
            log.info(
                "kfold: fold %d/%d (%d train / %d val images)%s", i + 1, k,
                len(split.train(i)), len(split.val(i)), ", resuming" if resumed else "",
            )  # fmt: skip
            group = f"kfold/{folder.name}"
            result = Trainer(cfg, hooks=[*tracking_hooks(cfg, group), *hooks]).fit()
            record = {
                "fold": i,
                "run_dir": os.fspath(result.run_dir),
                "best_epoch": result.best_epoch,
                "metrics": {key: float(v) for key, v in result.metrics.items()},
                "per_class": {
                    split.names[int(c)]: {key: float(v) for key, v in m.items()}
                    for c, m in result.per_class.items()
                },
            }
            write_json_atomic(result.run_dir / RESULT_FILE, record, indent=1)
            ran.append(i)
        done = fold_results(folder, k)
    missing = [i for i in range(k) if i not in done]
    if aggregate and missing:
        raise ConfigError(
            f"kfold aggregate: fold(s) {','.join(map(str, missing))} of {folder} are not "
            f"finished; run them with folds={','.join(map(str, missing))}"
        )
    summary = None
    if not missing:
        from .summary import summarize

        summary = summarize(folder, [done[i] for i in range(k)], split.names)
    else:
        log.info(
            "kfold: fold(s) %s still to run; the summary is written once every fold is finished",
            ",".join(map(str, missing)),
        )
    return KFoldResult(folder, k, ran, skipped, summary)
