"""The training loop: data -> forward/backward -> optimizer step, with hooks around it.

Validation, checkpoints, plateau and early-stopping decisions, stage switches, results.csv and
the end-of-run report are hooks (engine/hooks.py gives their order and why). The set-up builds
the data, model, loss and optimizer before it creates the run folder, so a bad dataset or
setting leaves no empty folder behind. An exception (Ctrl-C, SIGTERM, a crash) mid-epoch saves
``last.pt`` at the last completed optimizer step, which ``train.resume`` continues exactly.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from logging.handlers import MemoryHandler
from pathlib import Path

import torch
from tqdm import tqdm

from ..config import ConfigError, RunConfig, config_to_dict
from ..data.order import train_batches
from ..infer.device import resolve_amp, select_device
from .checkpoint import CheckpointError, build_checkpoint, load_checkpoint, load_model_state
from .distributed import broadcast_object, init_distributed, shutdown
from .hooks import Hook, HookList
from .resume import describe_replan
from .setup_train import build_parts, epoch_row, open_run_folder
from .signals import sigterm_raises
from .state import restore_rng_state, rng_state, seed_everything, set_deterministic

__all__ = ["Trainer", "TrainResult"]

log = logging.getLogger("detforge")


@dataclass
class TrainResult:
    run_dir: Path
    best_epoch: int
    best_fitness: float
    metrics: dict[str, float] = field(default_factory=dict)  # final validation of best.pt
    per_class: dict = field(default_factory=dict)
    train_seconds: float = 0.0
    train_images: int = 0
    epochs_run: int = 0
    stop_reason: str = ""


class Trainer:
    """``Trainer(cfg, hooks=[MyHook()]).fit()``; see :class:`~detforge.engine.hooks.Hook` for
    the events and what a hook may read and change. ``cfg`` is used as given: with
    ``train.resume``, build it with :func:`~detforge.engine.resume.load_train_config` (as
    ``detforge.train`` and the CLI do) to train with the checkpoint's settings."""

    def __init__(self, cfg: RunConfig, hooks: list[Hook] | tuple[Hook, ...] = ()):
        self.cfg = cfg
        self.user_hooks = list(hooks)
        HookList(self.user_hooks, True)  # reject a non-Hook before any work
        if cfg.track.loggers and not any(getattr(h, "tracker", None) for h in self.user_hooks):
            # track.* acts through hooks built above the engine; never accept it and do nothing
            raise ConfigError(
                "track.loggers: a Trainer built directly takes its trackers as hooks: "
                "Trainer(cfg, hooks=detforge.track.tracking_hooks(cfg))"
            )

    # ---------------------------------------------------------------- setup
    def setup(self) -> None:
        cfg = self.cfg
        ckpt = load_checkpoint(cfg.train.resume) if cfg.train.resume else None
        if ckpt is not None and ckpt.get("train") is None:
            raise CheckpointError(
                f"{cfg.train.resume} holds weights only, no training state to resume; start "
                f"from it with model.weights={cfg.train.resume}"
            )
        seed_everything(cfg.train.seed)
        set_deterministic(cfg.train.deterministic)
        dev = select_device(cfg.train.device)
        self.dist, self.device = init_distributed(dev, cfg.train.dist_timeout)
        self.is_main = self.dist.is_main  # only the main process writes files and validates
        self.amp_dtype = resolve_amp(cfg.train.amp, self.device)
        self.stop_reason = ""
        self.epoch, self.batch_in_epoch, self.step = 0, 0, 0
        self.best_fitness, self.best_epoch = -math.inf, -1
        self.epoch_sums: dict | None = None
        self.row, self.metrics, self.validated, self.improved = {}, {}, False, False
        self.last_val, self.final_metrics, self.per_class = None, {}, {}
        # log records of the set-up go to train.log once the run folder exists
        early_log = MemoryHandler(capacity=100_000, flushLevel=logging.CRITICAL + 1)
        log.addHandler(early_log)
        try:
            build_parts(self, load_weights=ckpt is None)
        finally:
            log.removeHandler(early_log)
        # self.cfg, not cfg: set-up replaced a batch=auto by its number, which config.yaml keeps
        folder, self.own_run, self._log_handler = open_run_folder(
            self.cfg, ckpt, self.dist, early_log
        )
        self.run_dir, self.weights_dir = folder, folder / "weights"
        try:
            self.resumed = ckpt is not None
            if ckpt is not None:
                self.load_state_dict(ckpt)
        except BaseException as e:
            log.error("could not resume from %s: %s", cfg.train.resume, e)
            self._close_log()
            raise

    def _close_log(self) -> None:
        if self._log_handler is not None:
            log.removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict:
        """The trainer's part of a checkpoint (``train``): enough to continue exactly."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "step": self.step,
            "best_fitness": self.best_fitness,
            "best_epoch": self.best_epoch,
            "schedule": self.schedule.state_dict(),
            "skipped_steps": self.stepper.skipped_steps,
            "rng": rng_state(),
            "epoch_sums": self.epoch_sums,
            "hooks": self.hooks.state_dict(),
        }

    def load_state_dict(self, ckpt: dict) -> None:
        src = f"resume {self.cfg.train.resume}"
        load_model_state(self.model, ckpt["model"], src)
        if self.ema is not None and ckpt.get("ema") is not None:
            self.ema.load_state_dict(ckpt["ema"])
        anchors = getattr(self.model, "anchors", None)
        if anchors is not None:  # the run's anchors (anchors=auto) came with its weights
            for m in (self.model, self.ema.module if self.ema is not None else None):
                if m is not None:
                    m.set_anchors(anchors.detach().clone())
            self.loss_fn.anchors.copy_(anchors)
        t = ckpt["train"]
        self.optimizer.load_state_dict(t["optimizer"])
        if t.get("scaler"):
            self.scaler.load_state_dict(t["scaler"])
        self.epoch, self.batch_in_epoch, self.step = t["epoch"], t["batch_in_epoch"], t["step"]
        self.best_fitness, self.best_epoch = t["best_fitness"], t["best_epoch"]
        if not self.own_run:  # best.pt of the old run is not here: track the best anew
            self.best_fitness, self.best_epoch = -math.inf, -1
        self.schedule.load_state_dict(t["schedule"])
        self.stepper.skipped_steps = t["skipped_steps"]
        self.epoch_sums = t.get("epoch_sums")
        self.hooks.load_state_dict(t.get("hooks") or {}, self.cfg.train.resume)
        restore_rng_state(t["rng"])
        log.info(
            "resumed from %s at epoch %d, batch %d",
            self.cfg.train.resume, self.epoch + 1, self.batch_in_epoch,
        )  # fmt: skip
        replan = describe_replan(ckpt.get("config") or {}, self.cfg, self.plan)
        if replan and self.is_main:
            log.info("%s", replan)

    def checkpoint(self, metrics: dict | None = None) -> dict:
        """A checkpoint of the current state (see engine/checkpoint.py for the layout)."""
        ema = self.ema.state_dict() if self.ema is not None else None
        return build_checkpoint(
            self.model, ema, self.data.names, config_to_dict(self.cfg), self.run_dir,
            metrics, self.state_dict(),
        )  # fmt: skip

    # ---------------------------------------------------------------- what hooks use
    def eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def request_stop(self, reason: str) -> None:
        """End training after the current epoch (every process; the first reason is kept)."""
        self.stop_reason = self.stop_reason or reason

    # ---------------------------------------------------------------- loop
    def fit(self) -> TrainResult:
        self.setup()
        self.train_seconds, self.train_images = 0.0, 0
        try:
            with sigterm_raises():
                self.hooks.call("before_train", self)
                while self.epoch < self.plan.epochs and not self.stop_reason:
                    self._run_epoch()
                self.hooks.call("after_train", self)
        except BaseException as e:
            self.stepper.rollback_window()  # BN statistics and RNG of an unfinished step
            try:
                self.hooks.on_exception(self, e)  # saves last.pt, which can fail too (full disk)
            finally:
                self._close_log()
            raise
        result = TrainResult(
            self.run_dir, self.best_epoch, self.best_fitness if self.is_main else 0.0,
            self.final_metrics, self.per_class, self.train_seconds,
            self.train_images * self.dist.world_size, self.epoch, self.stop_reason,
        )  # fmt: skip
        shutdown(self.dist)  # waits for every process first
        self._close_log()
        return result

    def _run_epoch(self) -> None:
        t0 = time.perf_counter()
        self.model.train()
        self.hooks.call("before_epoch", self)
        self.train_images += self.train_one_epoch()
        self.epoch_seconds = time.perf_counter() - t0
        self.train_seconds += self.epoch_seconds
        self.epoch += 1
        self.batch_in_epoch = 0
        self.metrics, self.validated, self.improved = {}, False, False
        self.hooks.call("after_epoch", self)
        # whichever hook asked to stop, and on whichever process, all processes stop together
        self.stop_reason = broadcast_object(self.stop_reason, self.dist)
        if self.stop_reason and self.is_main:
            log.info("%s; stopping after epoch %d", self.stop_reason, self.epoch)

    def train_one_epoch(self) -> int:
        """Optimizer steps over the epoch's (remaining) batches; sets ``row``; returns images."""
        cfg, data = self.cfg, self.data
        stage = self.plan.stage(self.epoch)
        data.train_set.set_epoch(self.epoch)
        data.train_sampler.resume_at(self.epoch, self.batch_in_epoch * stage.batch)
        if self.batch_in_epoch == 0 or self.epoch_sums is None:
            # running sums of the epoch, in checkpoints so a resumed epoch logs the whole epoch
            self.epoch_sums = {"loss": {}, "batches": 0, "grad_norms": []}
        sums = self.epoch_sums
        bar = tqdm(
            data.train_loader, total=len(data.train_loader), disable=not cfg.train.progress,
            desc=f"epoch {self.epoch + 1}/{self.plan.epochs}", leave=False, dynamic_ncols=True,
        )  # fmt: skip
        total_batches = train_batches(data.train_sampler.per_rank, stage.batch)
        window: list[dict[str, float]] = []
        mass, images, n_images = 0.0, 0, 0
        for batch in bar:
            if not window:
                self.hooks.call("before_step", self)
                self.stepper.save_buffers()
                steps_done = math.ceil(self.batch_in_epoch / self.accumulate)
                self.schedule.apply(self.optimizer, self.plan.schedule_step(self.epoch, steps_done))
            index = self.batch_in_epoch + len(window)
            x, targets = self.task.batch_inputs(self, batch, index)
            last = len(window) + 1 >= self.accumulate or index + 1 >= total_batches
            terms, batch_mass = self.stepper.forward_backward(x, targets, sync=last)
            window.append(terms)
            mass += batch_mass
            images += x.shape[0]
            if not last:
                continue
            norm, finite = self.stepper.step(mass, images, self.step)
            sums["grad_norms"].append(norm)
            # what after_step hooks (the trackers) read: this step's mean loss terms and norm
            self.step_losses = {k: sum(t[k] for t in window) / len(window) for k in window[0]}
            self.step_grad_norm = norm
            if finite:
                for terms in window:
                    for k, v in terms.items():
                        sums["loss"][k] = sums["loss"].get(k, 0.0) + v
                sums["batches"] += len(window)
            # a skipped step still advances the schedule: it is a function of batches consumed
            self.step += 1
            self.batch_in_epoch += len(window)
            n_images += images
            window, mass, images = [], 0.0, 0
            n = max(sums["batches"], 1)
            bar.set_postfix({k: f"{v / n:.3f}" for k, v in sums["loss"].items()})
            self.hooks.call("after_step", self)
        bar.close()
        skipped = self.stepper.skipped_steps
        self.row = epoch_row(self.epoch, self.epoch_sums, skipped, self.optimizer)
        return n_images
