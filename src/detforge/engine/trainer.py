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

from ..config import ConfigError, RunConfig, config_to_dict, dump_config
from .checkpoint import CheckpointError, build_checkpoint, load_checkpoint, load_model_state
from .components import build_loss_from_config, build_model_from_config
from .components import build_optimizer_from_config as build_optimizer
from .device import resolve_amp, select_device
from .distributed import barrier, broadcast_object, init_distributed, shutdown
from .ema import ModelEMA
from .gradients import GradientClipper
from .hooks import Hook, HookList, build_hooks
from .optim import describe_param_groups
from .plan import build_schedule, plan_run
from .resume import describe_replan, resume_run_dir
from .rundir import attach_log_file, make_run_dir, write_text_atomic
from .setup_data import DataBundle, build_data
from .signals import sigterm_raises
from .stages import multi_scale_rng, plan_stages, random_batch_size, resize_batch
from .state import restore_rng_state, rng_state, seed_everything, set_deterministic
from .stepper import Stepper

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
    the events and what a hook may read and change."""

    def __init__(self, cfg: RunConfig, hooks: list[Hook] | tuple[Hook, ...] = ()):
        self.cfg = cfg
        self.user_hooks = list(hooks)
        HookList(self.user_hooks, True)  # reject a non-Hook before any work

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
        # log records of the set-up go to train.log once the run folder exists
        early_log = MemoryHandler(capacity=100_000, flushLevel=logging.CRITICAL + 1)
        log.addHandler(early_log)
        try:
            self._build(ckpt is None)
        finally:
            log.removeHandler(early_log)
        self._open_run_dir(ckpt, early_log)
        try:
            self.resumed = ckpt is not None
            if ckpt is not None:
                self.load_state_dict(ckpt)
        except BaseException as e:
            log.error("could not resume from %s: %s", cfg.train.resume, e)
            self._close_log()
            raise

    def _build(self, load_weights: bool) -> None:
        """Data, model, loss, optimizer, schedule, stepper and hooks (no files written)."""
        cfg, dist = self.cfg, self.dist
        first = self._first_stage()
        self.data: DataBundle = build_data(cfg, dist.rank, dist.world_size, *first)
        self.model = build_model_from_config(cfg, len(self.data.names), self.device, load_weights)
        if dist.enabled and cfg.optim.unfreeze_at:
            raise ConfigError(
                "optim.unfreeze_at is not supported with torchrun yet (DDP fixes the trained "
                "parameters at start); freeze for the whole run or train in one process"
            )
        self.loss_fn = build_loss_from_config(
            cfg, self.model, self.data.train_set.labels, self.data.names
        )
        self.plan = plan_run(cfg, len(self.data.train_set), dist.world_size)
        self.accumulate = self.plan.accumulate
        eff_batch = cfg.train.batch * self.accumulate * dist.world_size
        self.optimizer, wd = build_optimizer(cfg, self.model, eff_batch)
        log.info("parameter groups:\n%s", describe_param_groups(self.optimizer))
        if len(self.plan.stages) > 1:
            log.info("stages:\n%s", self.plan.describe())
        self.schedule = build_schedule(cfg, self.plan)
        log.info("schedule: %s", self.schedule.describe())
        fp16 = self.device.type == "cuda" and self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=fp16)
        c = cfg.clip
        clipper = GradientClipper(c.mode, c.max_norm, c.norm_type, c.max_value)
        t = cfg.train
        self.ema = ModelEMA(self.model, t.ema_decay, t.ema_tau) if t.ema else None
        self.stepper = Stepper(
            self.model, self.loss_fn, self.optimizer, self.scaler, clipper, self.ema,
            self.device, self.amp_dtype, t.max_nonfinite, dist,
        )  # fmt: skip
        self.hooks = HookList(build_hooks(cfg, self.user_hooks), self.is_main)
        self.stop_reason = ""
        self.epoch, self.batch_in_epoch, self.step = 0, 0, 0
        self.best_fitness, self.best_epoch = -math.inf, -1
        self.epoch_sums: dict | None = None
        self.row: dict = {}
        self.metrics: dict[str, float] = {}
        self.validated = self.improved = False
        self.last_val = None
        self.final_metrics, self.per_class = {}, {}
        log.info(
            "optimizer %s lr0 %g, weight decay %g (effective batch %d = %d x accumulate %d), "
            "amp %s, device %s",
            cfg.optim.name, cfg.optim.lr0, wd, eff_batch, cfg.train.batch, self.accumulate,
            str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "off", self.device,
        )  # fmt: skip

    def _first_stage(self) -> tuple[int, int]:
        t = self.cfg.train
        first = plan_stages(t.stages, t.epochs, t.imgsz, t.batch)[0]
        return first.imgsz, first.batch

    def _open_run_dir(self, ckpt: dict | None, early_log: MemoryHandler) -> None:
        cfg, placed = self.cfg, None
        if self.is_main:
            if ckpt is not None:
                folder, own = resume_run_dir(cfg.train.resume, ckpt, cfg)
            else:
                t = cfg.train
                folder, own = make_run_dir(t.project, t.name, t.exist_ok), True
            placed = (str(folder), own)
        folder, self.own_run = broadcast_object(placed, self.dist)
        self.run_dir = Path(folder)
        self.weights_dir = self.run_dir / "weights"
        self._log_handler = None
        if self.is_main:
            self.weights_dir.mkdir(parents=True, exist_ok=True)
            self._log_handler = attach_log_file(log, self.run_dir / "train.log")
            early_log.setTarget(self._log_handler)
            early_log.flush()
            write_text_atomic(self.run_dir / "config.yaml", dump_config(cfg))
            log.info("run folder: %s", self.run_dir)
            if self.dist.enabled:
                log.info("distributed: %d processes", self.dist.world_size)

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
                while self.epoch < self.cfg.train.epochs and not self.stop_reason:
                    self._run_epoch()
                self.hooks.call("after_train", self)
        except BaseException as e:
            self.stepper.restore_buffers()  # BN statistics of an unfinished step
            self.hooks.on_exception(self, e)
            self._close_log()
            raise
        result = TrainResult(
            self.run_dir, self.best_epoch, self.best_fitness if self.is_main else 0.0,
            self.final_metrics, self.per_class, self.train_seconds,
            self.train_images * self.dist.world_size, self.epoch, self.stop_reason,
        )  # fmt: skip
        barrier(self.dist)
        shutdown(self.dist)
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
            desc=f"epoch {self.epoch + 1}/{cfg.train.epochs}", leave=False, dynamic_ncols=True,
        )  # fmt: skip
        total_batches = math.ceil(data.train_sampler.per_rank / stage.batch)
        window: list[dict[str, float]] = []
        mass, images, n_images = 0.0, 0, 0
        for batch in bar:
            if not window:
                self.hooks.call("before_step", self)
                self.stepper.save_buffers()
                steps_done = math.ceil(self.batch_in_epoch / self.accumulate)
                self.schedule.apply(self.optimizer, self.plan.schedule_step(self.epoch, steps_done))
            index = self.batch_in_epoch + len(window)
            x, targets = self._batch_inputs(batch, index)
            last = len(window) + 1 >= self.accumulate or index + 1 >= total_batches
            terms, batch_mass = self.stepper.forward_backward(x, targets, sync=last)
            window.append(terms)
            mass += batch_mass
            images += x.shape[0]
            if not last:
                continue
            norm, finite = self.stepper.step(mass, images, self.step)
            sums["grad_norms"].append(norm)
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
        self.row = self._epoch_row()
        return n_images

    def _epoch_row(self) -> dict:
        sums, n = self.epoch_sums, max(self.epoch_sums["batches"], 1)
        row: dict = {"epoch": self.epoch + 1}
        row.update({f"train/{k}": v / n for k, v in sums["loss"].items()})
        finite = [g for g in sums["grad_norms"] if math.isfinite(g)]
        if finite:
            row["grad_norm/mean"] = sum(finite) / len(finite)
            row["grad_norm/max"] = max(finite)
        row["skipped_steps"] = self.stepper.skipped_steps
        for g in self.optimizer.param_groups:
            row[f"lr/{g['name']}"] = g["lr"]
        return row

    def _batch_inputs(self, batch: dict, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Images as floats in [0, 1] (channels-last) and targets on the device; with
        augment.multi_scale, resized to the size drawn for (seed, epoch, batch index)."""
        x = batch["img"].to(self.device, non_blocking=True).float().div_(255)
        x = x.contiguous(memory_format=torch.channels_last)
        targets = batch["targets"].to(self.device)
        if self.cfg.augment.multi_scale:
            rng = multi_scale_rng(self.cfg.train.seed, self.epoch, index)
            size = random_batch_size(
                x.shape[-1], self.cfg.augment.multi_scale, self.model.max_stride, rng
            )
            x, targets = resize_batch(x, targets, size)
        return x, targets
