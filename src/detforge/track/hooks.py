"""Experiment tracking hooks: TensorBoard, MLflow and W&B, one :class:`Hook` per ``track.loggers``.

A tracker runs only when named in ``track.loggers`` (its package is imported then, never
because it is installed). Each logs the resolved configuration at the start, every loss term,
the learning rate of each parameter group and the gradient norm every ``track.every_steps``
optimizer steps (``step/*``, x = optimizer step), every numeric ``results.csv`` column per
epoch (x = epoch), and at the end ``results.csv``, ``config.yaml``, the PR and confusion plots,
``best.pt`` and ``report.html`` as artifacts. A tracker that fails in any way (package missing,
server unreachable, bad URI, full disk) logs one warning naming it and is switched off; the
training run and its files are not touched by it. No tracker talks to the network unless asked
(``track.mlflow_uri`` of a server, ``track.wandb_mode=online``); their telemetry is turned off.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import RunConfig, config_to_dict, dump_config
from ..engine.hooks import Hook

if TYPE_CHECKING:
    from ..engine.trainer import Trainer

__all__ = ["TrackerHook", "TensorBoardHook", "MLflowHook", "WandbHook", "tracking_hooks"]

log = logging.getLogger("detforge")

ARTIFACTS = (
    "results.csv", "config.yaml", "report.html", "weights/best.pt",
    "eval/pr_curve.png", "eval/confusion_matrix.png", "eval/confusion_matrix_normalized.png",
)  # fmt: skip


def _flat(tree: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class TrackerHook(Hook):
    """One tracker: subclasses implement ``start``, ``scalars``, ``artifacts`` and ``finish``;
    this class calls them at the training events and switches the tracker off on its first
    failure. Main process only (the default of hooks)."""

    tracker = "tracker"

    def __init__(self, cfg: RunConfig, group: str | None = None):
        self.cfg, self.group = cfg, group
        self.every = cfg.track.every_steps
        self.enabled = True

    def _guard(self, what: str, fn, *args) -> None:
        if not self.enabled:
            return
        try:
            fn(*args)
        except Exception as e:  # any failure of a tracker: off, once, and training goes on
            self.enabled = False
            log.warning(
                "track: %s failed (%s: %s: %s); it is switched off, training goes on",
                self.tracker, what, type(e).__name__, e,
            )  # fmt: skip
            try:
                self.finish("FAILED")
            except Exception:
                pass  # the warning above already names the tracker

    # ---------------------------------------------------------------- events
    def before_train(self, tr: Trainer) -> None:
        self._guard("start", self.start, tr.run_dir, config_to_dict(tr.cfg))

    def after_step(self, tr: Trainer) -> None:
        if tr.step % self.every:
            return
        values = {f"step/{k}": v for k, v in tr.step_losses.items()}
        values.update({f"step/lr/{g.get('name', i)}": g["lr"]
                       for i, g in enumerate(tr.optimizer.param_groups)})  # fmt: skip
        if math.isfinite(tr.step_grad_norm):
            values["step/grad_norm"] = tr.step_grad_norm
        self._guard("logging a step", self.scalars, values, tr.step)

    def after_epoch(self, tr: Trainer) -> None:
        values = {k: float(v) for k, v in tr.row.items()
                  if k != "epoch" and isinstance(v, int | float) and math.isfinite(v)}  # fmt: skip
        self._guard("logging an epoch", self.scalars, values, tr.epoch)

    def after_train(self, tr: Trainer) -> None:
        files = [tr.run_dir / a for a in ARTIFACTS if (tr.run_dir / a).is_file()]
        self._guard("saving artifacts", self.artifacts, files)
        self._guard("closing", self.finish, "FINISHED")

    def on_exception(self, tr: Trainer, exc: BaseException) -> None:
        self._guard(
            "closing", self.finish, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        )

    # ---------------------------------------------------------------- backend
    def start(self, run_dir: Path, config: dict) -> None:
        raise NotImplementedError

    def scalars(self, values: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def artifacts(self, files: list[Path]) -> None:
        raise NotImplementedError

    def finish(self, status: str) -> None:
        raise NotImplementedError


class TensorBoardHook(TrackerHook):
    """Event files in ``run_dir/tensorboard`` through ``torch.utils.tensorboard``; artifacts
    stay in the run folder (TensorBoard has no artifact store); the config as text."""

    tracker = "tensorboard"
    writer = None

    def start(self, run_dir: Path, config: dict) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        self.writer.add_text("config", "```\n" + dump_config(self.cfg) + "\n```", 0)

    def scalars(self, values: dict[str, float], step: int) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def artifacts(self, files: list[Path]) -> None:
        self.writer.add_text("artifacts", "\n".join(str(f) for f in files), 0)

    def finish(self, status: str) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class MLflowHook(TrackerHook):
    """An MLflow run (experiment ``detforge``) in a SQLite store ``run_dir/mlflow.db`` with
    artifacts in ``run_dir/mlartifacts`` (MLflow's file store is frozen and refuses new runs),
    unless ``track.mlflow_uri`` names another store or a server; the config as parameters.

    Runs of a group (the folds of one k-fold, the trials of one study) go to one experiment
    named after the group, tagged ``detforge.group``; with the local store, it is one store in
    the group's folder (the run folders' parent) instead of one per run."""

    tracker = "mlflow"
    client = None
    run_id = None

    def start(self, run_dir: Path, config: dict) -> None:
        # no telemetry, no network unless the URI asks for it
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        os.environ.setdefault("DO_NOT_TRACK", "true")
        from mlflow.tracking import MlflowClient

        local = self.cfg.track.mlflow_uri is None
        store = (run_dir.parent if self.group else run_dir).resolve()
        uri = f"sqlite:///{store / 'mlflow.db'}" if local else self.cfg.track.mlflow_uri
        self.client = MlflowClient(tracking_uri=uri)
        name = f"detforge/{self.group}" if self.group else "detforge"
        exp = self.client.get_experiment_by_name(name)
        artifacts = (store / "mlartifacts").as_uri() if local else None
        exp_id = exp.experiment_id if exp else self.client.create_experiment(name, artifacts)
        tags = {"detforge.group": self.group} if self.group else None
        self.run_id = self.client.create_run(exp_id, run_name=run_dir.name, tags=tags).info.run_id
        from mlflow.entities import Param

        params = [Param(k, str(v)[:6000]) for k, v in _flat(config).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def scalars(self, values: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in values.items()]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000])

    def artifacts(self, files: list[Path]) -> None:
        for f in files:
            self.client.log_artifact(
                self.run_id, str(f), f.parent.name if f.parent.name in ("weights", "eval") else None
            )

    def finish(self, status: str) -> None:
        if self.client is not None and self.run_id is not None:
            run_id, self.run_id = self.run_id, None
            self.client.set_terminated(run_id, status)


class WandbHook(TrackerHook):
    """A W&B run in ``run_dir/wandb``, offline (no login, no network) unless
    ``track.wandb_mode=online``; the config as the run's config; runs of a group (folds of a
    k-fold, trials of a study) share W&B's ``group``."""

    tracker = "wandb"
    run = None

    def start(self, run_dir: Path, config: dict) -> None:
        offline = self.cfg.track.wandb_mode == "offline"
        if offline:
            os.environ["WANDB_MODE"] = "offline"
        os.environ.setdefault("WANDB_SILENT", "true")
        os.environ.setdefault("WANDB_DISABLE_GIT", "true")
        import wandb

        self.run = wandb.init(
            project="detforge", name=run_dir.name, dir=str(run_dir), config=config,
            group=self.group,
            mode=self.cfg.track.wandb_mode, reinit="create_new",
            settings=wandb.Settings(silent=True, console="off", x_disable_stats=True,
                                    save_code=False, disable_git=True),
        )  # fmt: skip

    def scalars(self, values: dict[str, float], step: int) -> None:
        # W&B wants one increasing step: step/* keys use the optimizer step, epoch rows "epoch"
        if any(k.startswith("step/") for k in values):
            self.run.log({**values, "optimizer_step": step})
        else:
            self.run.log({**values, "epoch": step})

    def artifacts(self, files: list[Path]) -> None:
        import wandb

        art = wandb.Artifact(f"run-{self.run.id}", type="detforge-run")
        for f in files:
            art.add_file(
                str(f),
                name=str(
                    f.name
                    if f.parent.name not in ("weights", "eval")
                    else f"{f.parent.name}/{f.name}"
                ),
            )
        self.run.log_artifact(art)

    def finish(self, status: str) -> None:
        if self.run is not None:
            run, self.run = self.run, None
            run.finish(exit_code=0 if status == "FINISHED" else 1)


HOOKS = {"tensorboard": TensorBoardHook, "mlflow": MLflowHook, "wandb": WandbHook}


def tracking_hooks(cfg: RunConfig, group: str | None = None) -> list[Hook]:
    """The tracker hooks ``track.loggers`` asks for, in that order (none: an empty list).

    group: a name shared by related runs, e.g. ``kfold/cv`` or ``tune/grid-lr-warmup``, whose
    run folders sit in one folder: MLflow puts them in one experiment (and one local store in
    that folder), W&B in one group; TensorBoard needs nothing (point it at the folder)."""
    return [HOOKS[name](cfg, group) for name in dict.fromkeys(cfg.track.loggers)]
