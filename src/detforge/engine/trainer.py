"""The training loop: data, model, loss, optimizer, schedule, EMA, validation, checkpoints.

Order at the end of every epoch (written down because it matters): save ``last.pt`` first, so a
failing validation still leaves a checkpoint; then validate, log ``results.csv``, and save
``last.pt`` / ``best.pt`` again with the metrics. An exception mid-epoch saves ``last.pt`` at the
last completed optimizer step, which ``train.resume`` continues exactly.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from ..config import ConfigError, RunConfig, config_to_dict, dump_config
from ..eval.metrics import scalar_metrics
from ..eval.report import dataset_ground_truth
from ..losses.detection import build_loss_from_config
from ..models.factory import build_model_from_config
from .checkpoint import load_checkpoint, load_initial_weights, load_model_state, save_atomic
from .device import resolve_amp, select_device
from .distributed import barrier, broadcast_object, init_distributed, shutdown
from .early_stop import EarlyStopping, monitored_value
from .ema import ModelEMA
from .fitness import fitness
from .freeze import freeze_active, freeze_norm_stats, unfreeze
from .gradients import GradientClipper
from .optim import accumulation_steps, build_optimizer_from_config, describe_param_groups
from .rundir import ResultsCSV, attach_log_file, make_run_dir, write_text_atomic
from .schedule import build_schedule_from_config
from .setup_data import (
    DataBundle,
    build_data,
    build_train_loader,
    build_train_sampler,
    build_train_set,
)
from .stages import (
    Stage,
    StagePlan,
    multi_scale_rng,
    plan_stages,
    random_batch_size,
    resize_batch,
)
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


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e6
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # KiB on Linux


class Trainer:
    def __init__(self, cfg: RunConfig, hooks=()):
        self.cfg = cfg
        self.hooks = list(hooks)

    # ---------------------------------------------------------------- setup
    def setup(self) -> None:
        cfg = self.cfg
        resume_ckpt = load_checkpoint(cfg.train.resume) if cfg.train.resume else None
        seed_everything(cfg.train.seed)
        set_deterministic(cfg.train.deterministic)
        self.dist, self.device = init_distributed(select_device(cfg.train.device))
        self.main = self.dist.is_main  # only the main process writes files and validates
        self.amp_dtype = resolve_amp(cfg.train.amp, self.device)

        run_dir = None
        if self.main:
            if resume_ckpt is not None:
                run_dir = Path(cfg.train.resume).resolve().parent.parent
            else:
                run_dir = make_run_dir(cfg.train.project, cfg.train.name, cfg.train.exist_ok)
        self.run_dir = Path(broadcast_object(run_dir and str(run_dir), self.dist))
        self.weights_dir = self.run_dir / "weights"
        self._log_handler = None
        if self.main:
            self.weights_dir.mkdir(parents=True, exist_ok=True)
            self._log_handler = attach_log_file(log, self.run_dir / "train.log")
            write_text_atomic(self.run_dir / "config.yaml", dump_config(cfg))
            log.info("run folder: %s", self.run_dir)
            if self.dist.enabled:
                log.info("distributed: %d processes", self.dist.world_size)

        stages = plan_stages(cfg.train.stages, cfg.train.epochs, cfg.train.imgsz, cfg.train.batch)
        self.data: DataBundle = build_data(
            cfg, self.dist.rank, self.dist.world_size, stages[0].imgsz, stages[0].batch
        )
        self._train_shape = (stages[0].imgsz, stages[0].batch)
        model = build_model_from_config(cfg.model, len(self.data.names), cfg.train.imgsz)
        if cfg.model.weights and resume_ckpt is None:
            load_initial_weights(model, cfg.model.weights)
        self.model = model.to(self.device, memory_format=torch.channels_last)
        if self.dist.enabled and cfg.optim.unfreeze_at:
            raise ConfigError(
                "optim.unfreeze_at is not supported with torchrun yet (DDP fixes the trained "
                "parameters at start); freeze for the whole run or train in one process"
            )
        m = self.model
        self.loss_fn = build_loss_from_config(
            cfg.loss, m.nc, m.strides, m.reg_max, self.data.train_set.labels, self.data.names
        )
        self.accumulate = accumulation_steps(cfg.train, self.dist.world_size)
        eff_batch = cfg.train.batch * self.accumulate * self.dist.world_size
        self.optimizer, wd = build_optimizer_from_config(cfg.optim, self.model, eff_batch)
        log.info("parameter groups:\n%s", describe_param_groups(self.optimizer))
        n_train = math.ceil(len(self.data.train_set) / self.dist.world_size)  # per process
        self.plan = StagePlan(
            stages, [math.ceil(math.ceil(n_train / st.batch) / self.accumulate) for st in stages]
        )
        if len(stages) > 1:
            log.info(
                "stages: %s",
                ", ".join(
                    f"epochs {st.first_epoch + 1}-{st.first_epoch + st.epochs} at {st.imgsz} px, "
                    f"batch {st.batch}"
                    for st in stages
                ),
            )
        self._val_gt = dataset_ground_truth(self.data.val_set)
        self.schedule = build_schedule_from_config(
            cfg, self.plan.steps_per_epoch * self.accumulate, self.accumulate
        )
        log.info("schedule: %s", self.schedule.describe())
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=self.device.type == "cuda" and self.amp_dtype == torch.float16
        )
        self.clipper = GradientClipper(
            cfg.clip.mode, cfg.clip.max_norm, cfg.clip.norm_type, cfg.clip.max_value
        )
        self.ema = (
            ModelEMA(self.model, cfg.train.ema_decay, cfg.train.ema_tau) if cfg.train.ema else None
        )
        self.stepper = Stepper(
            self.model, self.loss_fn, self.optimizer, self.scaler, self.clipper, self.ema,
            self.device, self.amp_dtype, cfg.train.max_nonfinite, self.dist,
        )  # fmt: skip
        es = cfg.early_stop
        self.early_stop = EarlyStopping(es.monitor, es.mode, es.patience, es.min_delta)
        self.stop_reason = ""
        self.epoch, self.batch_in_epoch, self.step = 0, 0, 0
        self.best_fitness, self.best_epoch = -math.inf, -1
        # a fresh run starts a fresh results.csv even in a reused folder (exist_ok)
        self.results = ResultsCSV(self.run_dir / "results.csv")
        self.last_val = None
        if resume_ckpt is not None:
            self.results = ResultsCSV.load(self.run_dir / "results.csv")
            self._restore(resume_ckpt)
        log.info(
            "optimizer %s lr0 %g, weight decay %g (effective batch %d = %d x accumulate %d), "
            "amp %s, device %s",
            cfg.optim.name,
            cfg.optim.lr0,
            wd,
            eff_batch,
            cfg.train.batch,
            self.accumulate,
            str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "off",
            self.device,
        )

    def _restore(self, ckpt: dict) -> None:
        load_model_state(self.model, ckpt["model"], f"resume {self.cfg.train.resume}")
        if self.ema is not None and ckpt.get("ema") is not None:
            self.ema.load_state_dict(ckpt["ema_state"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.batch_in_epoch = ckpt["epoch"], ckpt["batch_in_epoch"]
        self.step = ckpt["step"]
        self.best_fitness, self.best_epoch = ckpt["best_fitness"], ckpt["best_epoch"]
        self.early_stop.load_state_dict(ckpt["early_stop"])
        self.schedule.load_state_dict(ckpt["schedule"])
        self.stepper.skipped_steps = ckpt.get("skipped_steps", 0)
        self.results.truncate(self.epoch)
        restore_rng_state(ckpt["rng"])
        log.info(
            "resumed from %s at epoch %d, batch %d",
            self.cfg.train.resume,
            self.epoch + 1,
            self.batch_in_epoch,
        )

    # ---------------------------------------------------------------- checkpoints
    def checkpoint(self, metrics: dict | None = None) -> dict:
        return {
            "format": "detforge-checkpoint-1",
            "model_spec": asdict(self.model.spec),
            "num_classes": self.model.nc,
            "names": list(self.data.names),
            "model": self.model.state_dict(),
            "ema": self.ema.module.state_dict() if self.ema else None,
            "ema_state": self.ema.state_dict() if self.ema else None,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "step": self.step,
            "best_fitness": self.best_fitness,
            "best_epoch": self.best_epoch,
            "early_stop": self.early_stop.state_dict(),
            "schedule": self.schedule.state_dict(),
            "skipped_steps": self.stepper.skipped_steps,
            "metrics": metrics or {},
            "config": config_to_dict(self.cfg),
            "rng": rng_state(),
        }

    # ---------------------------------------------------------------- loop
    def fit(self) -> TrainResult:
        self.setup()
        cfg = self.cfg
        t_train, images = 0.0, 0
        try:
            while self.epoch < cfg.train.epochs and not self.stop_reason:
                t0 = time.perf_counter()
                row, n_img = self.train_one_epoch()
                t_train += time.perf_counter() - t0
                images += n_img
                self.end_epoch(row, time.perf_counter() - t0)
        except BaseException:
            # counters move only after a whole optimizer step, and BN statistics of an unfinished
            # step are rolled back, so last.pt is exactly the state after the last whole step
            self.stepper.restore_buffers()
            if not self.main:
                raise
            save_atomic(self.checkpoint(), self.weights_dir / "last.pt")
            log.error(
                "training stopped in epoch %d after %d batches; checkpoint saved. Resume with: "
                "detforge train resume=%s",
                self.epoch + 1,
                self.batch_in_epoch,
                self.weights_dir / "last.pt",
            )
            log.removeHandler(self._log_handler)
            raise
        result = self.finish() if self.main else TrainResult(self.run_dir, self.best_epoch, 0.0)
        result.train_seconds, result.train_images = t_train, images * self.dist.world_size
        result.epochs_run, result.stop_reason = self.epoch, self.stop_reason
        barrier(self.dist)
        shutdown(self.dist)
        if self._log_handler is not None:
            log.removeHandler(self._log_handler)
        return result

    def train_one_epoch(self) -> tuple[dict, int]:
        cfg, model = self.cfg, self.model
        if cfg.optim.freeze and not freeze_active(self.epoch, cfg.optim.unfreeze_at):
            unfreeze(model, cfg.optim.freeze)  # idempotent, so resuming past unfreeze_at works
        model.train()
        freeze_norm_stats(model)  # frozen parts keep their BatchNorm statistics
        stage = self._enter_stage()
        data = self.data
        data.train_set.set_epoch(self.epoch)
        data.train_sampler.resume_at(self.epoch, self.batch_in_epoch * stage.batch)
        sums: dict[str, float] = {}
        grad_norms: list[float] = []
        n_batches = n_images = 0
        bar = tqdm(
            data.train_loader,
            total=len(data.train_loader),
            desc=f"epoch {self.epoch + 1}/{cfg.train.epochs}",
            disable=not cfg.train.progress,
            leave=False,
            dynamic_ncols=True,
        )
        total_batches = math.ceil(data.train_sampler.per_rank / stage.batch)
        window: list[dict[str, float]] = []
        mass = 0.0
        images = 0
        for batch in bar:
            if not window:
                self.stepper.save_buffers()
                steps_done = math.ceil(self.batch_in_epoch / self.accumulate)
                self.schedule.apply(self.optimizer, self.plan.schedule_step(self.epoch, steps_done))
            index = self.batch_in_epoch + len(window)
            x, targets = self._batch_inputs(batch, index)
            terms, batch_mass = self.stepper.forward_backward(x, targets)
            b = x.shape[0]
            window.append(terms)
            mass += batch_mass
            images += b
            position = self.batch_in_epoch + len(window)
            if len(window) < self.accumulate and position < total_batches:
                continue
            norm, finite = self.stepper.step(mass, images, self.step)
            grad_norms.append(norm)
            if finite:
                for terms in window:
                    for k, v in terms.items():
                        sums[k] = sums.get(k, 0.0) + v
                n_batches += len(window)
            # a skipped step still advances the schedule: it is a function of batches consumed
            self.step += 1
            self.batch_in_epoch += len(window)
            n_images += images
            window, mass, images = [], 0.0, 0
            bar.set_postfix({k: f"{v / max(n_batches, 1):.3f}" for k, v in sums.items()})
        bar.close()
        row = {"epoch": self.epoch + 1}
        row.update({f"train/{k}": v / max(n_batches, 1) for k, v in sums.items()})
        finite = [g for g in grad_norms if math.isfinite(g)]
        if finite:
            row["grad_norm/mean"] = sum(finite) / len(finite)
            row["grad_norm/max"] = max(finite)
        row["skipped_steps"] = self.stepper.skipped_steps
        for g in self.optimizer.param_groups:
            row[f"lr/{g['name']}"] = g["lr"]
        return row, n_images

    def _enter_stage(self) -> Stage:
        """Rebuild the training set and loader when the epoch starts a new stage."""
        cfg, stage = self.cfg, self.plan.stage(self.epoch)
        if (stage.imgsz, stage.batch) != self._train_shape:
            d = self.data
            image_cache = d.train_set.image_cache  # decoded originals do not depend on imgsz
            d.train_set = build_train_set(cfg, d.spec, stage.imgsz)
            d.train_set.set_image_cache(image_cache)
            d.train_sampler = build_train_sampler(
                cfg, d.train_set, self.dist.rank, self.dist.world_size
            )
            d.train_loader = build_train_loader(
                cfg, d.train_set, d.train_sampler, stage.batch, d.workers
            )
            self._train_shape = (stage.imgsz, stage.batch)
            log.info(
                "stage: %d px, batch %d from epoch %d", stage.imgsz, stage.batch, self.epoch + 1
            )
        return stage

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

    def end_epoch(self, row: dict, seconds: float) -> None:
        """Checkpoint, validate (main process), feed schedule and early stopping, log."""
        cfg = self.cfg
        self.epoch += 1
        self.batch_in_epoch = 0
        validate = self.epoch == cfg.train.epochs or self.epoch % cfg.train.val_interval == 0
        metrics: dict[str, float] = {}
        watched, improved = None, False
        if self.main:
            save_atomic(self.checkpoint(), self.weights_dir / "last.pt")
            if validate:
                metrics, improved = self._validate(row)
                if self.schedule.needs_metric:
                    watched = monitored_value(cfg.schedule.monitor, row, "schedule.monitor")
                value = monitored_value(cfg.early_stop.monitor, row, "early_stop.monitor")
                if self.early_stop.step(value, self.epoch):
                    self.stop_reason = self.early_stop.reason
        # every process applies the same plateau decision and stops together
        watched, self.stop_reason = broadcast_object((watched, self.stop_reason), self.dist)
        if watched is not None:
            position = self.plan.schedule_step(self.epoch, 0)
            if self.schedule.observe(watched, position) and self.main:
                log.info(
                    "plateau: %s stalled at %.5g, learning rate cut by %g",
                    cfg.schedule.monitor, watched, cfg.schedule.factor,
                )  # fmt: skip
        if not self.main:
            return
        if validate:
            ckpt = self.checkpoint(metrics)
            save_atomic(ckpt, self.weights_dir / "last.pt")
            if improved:
                save_atomic(ckpt, self.weights_dir / "best.pt")
            losses = " ".join(f"{k[6:]} {v:.3f}" for k, v in row.items() if k.startswith("train/"))
            log.info(
                "epoch %d/%d  %s  mAP50 %.4f  mAP50-95 %.4f%s", self.epoch, cfg.train.epochs,
                losses, metrics["map50"], metrics["map50_95"], "  (best)" if improved else "",
            )  # fmt: skip
        if cfg.train.save_period and self.epoch % cfg.train.save_period == 0:
            save_atomic(self.checkpoint(metrics), self.weights_dir / f"epoch{self.epoch}.pt")
        row["epoch_time"] = seconds
        row["peak_mem_mb"] = _peak_memory_mb(self.device)
        self.results.append(row)
        if self.stop_reason:
            log.info("%s; stopping after epoch %d", self.stop_reason, self.epoch)
        for hook in self.hooks:
            hook(self, row)

    def _validate(self, row: dict) -> tuple[dict[str, float], bool]:
        """Validate the EMA (or model), add val/*, metrics/* and fitness to ``row``."""
        val = self.data.validator.run(self.eval_model(), self.loss_fn, keep_predictions=True)
        self.last_val = val
        row["val_time"] = val.seconds
        metrics = {
            **val.metrics,
            **scalar_metrics(val.predictions, self._val_gt, len(self.data.names)),
        }
        row.update({f"val/{k}": v for k, v in val.losses.items()})
        row.update({f"metrics/{k}": v for k, v in metrics.items()})
        fit = fitness(metrics, self.cfg.train.fitness)
        row["fitness"] = fit
        improved = fit > self.best_fitness
        if improved:
            self.best_fitness, self.best_epoch = fit, self.epoch
        return metrics, improved

    def eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def finish(self) -> TrainResult:
        """Validate ``best.pt`` once more, print per-class metrics, export COCO json."""
        from ..eval.report import export_run_predictions, format_per_class, write_run_analysis

        if self.best_epoch == self.epoch and self.last_val is not None:
            val = self.last_val  # best.pt is the model just validated: do not repeat it
        else:
            best = load_checkpoint(self.weights_dir / "best.pt", map_location=self.device)
            model = self.eval_model()
            load_model_state(model, best["ema"] or best["model"], "best.pt")
            val = self.data.validator.run(model, keep_predictions=True)
        log.info(
            "best epoch %d, validation of best.pt:\n%s",
            self.best_epoch,
            format_per_class(val.result, self.data.names),
        )
        if self.cfg.eval.save_json:
            export_run_predictions(self.run_dir, self.data.val_set, val.predictions)
        if self.cfg.eval.report:
            try:
                report = write_run_analysis(
                    self.run_dir, val.result, val.predictions, self.data.val_set
                )
                log.info("report: %s", report)
            except Exception as e:  # a finished run must not fail because a plot did
                log.warning("could not write the run report: %s", e)
        return TrainResult(
            self.run_dir, self.best_epoch, self.best_fitness, val.metrics, val.result.per_class
        )
