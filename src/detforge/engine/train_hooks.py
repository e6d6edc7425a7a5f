"""The built-in training hooks; :func:`detforge.engine.hooks.build_hooks` gives their order."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch

from ..config import RunConfig
from .checkpoint import load_checkpoint, load_model_state, model_weights, save_atomic
from .distributed import broadcast_object
from .early_stop import EarlyStopping, monitored_value
from .fitness import fitness
from .freeze import freeze_active, freeze_norm_stats, unfreeze
from .hooks import Hook
from .rundir import ResultsCSV
from .setup_data import build_train_loader, build_train_sampler, build_train_set

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = [
    "FreezeHook", "StageHook", "LastCheckpointHook", "ValidationHook", "PlateauHook",
    "EarlyStopHook", "ResultsHook", "FinishHook", "EpochCheckpointHook",
]  # fmt: skip

log = logging.getLogger("detforge")


class FreezeHook(Hook):
    """Unfreeze at ``optim.unfreeze_at`` (idempotent, so resuming past it works); frozen parts
    keep their BatchNorm statistics."""

    main_process_only = False

    def before_epoch(self, tr: Trainer) -> None:
        freeze = tr.cfg.optim.freeze
        if freeze and not freeze_active(tr.epoch, tr.cfg.optim.unfreeze_at):
            unfreeze(tr.model, freeze)
        freeze_norm_stats(tr.model)


class StageHook(Hook):
    """Rebuild the training set and loader when the epoch starts a new ``train.stages`` stage."""

    main_process_only = False

    def before_train(self, tr: Trainer) -> None:
        first = tr.plan.stages[0]
        self.shape = (first.imgsz, first.batch)  # what build_data built

    def before_epoch(self, tr: Trainer) -> None:
        cfg, stage = tr.cfg, tr.plan.stage(tr.epoch)
        if (stage.imgsz, stage.batch) == self.shape:
            return
        d = tr.data
        image_cache = d.train_set.image_cache  # decoded originals do not depend on imgsz
        d.train_set = build_train_set(cfg, d.spec, stage.imgsz, tr.plan.mosaic_until)
        d.train_set.set_image_cache(image_cache)
        rank, world = tr.dist.rank, tr.dist.world_size
        d.train_sampler = build_train_sampler(cfg, d.train_set, rank, world)
        d.train_loader = build_train_loader(
            cfg, d.train_set, d.train_sampler, stage.batch, d.workers
        )
        self.shape = (stage.imgsz, stage.batch)
        log.info("stage: %d px, batch %d from epoch %d", stage.imgsz, stage.batch, tr.epoch + 1)


def validates_now(tr: Trainer) -> bool:
    """Whether the epoch just finished is validated (every ``train.val_interval``, and last)."""
    return tr.epoch == tr.plan.epochs or tr.epoch % tr.cfg.train.val_interval == 0


class LastCheckpointHook(Hook):
    """``last.pt`` before validation (so a failing validation still leaves the epoch's state;
    epochs without validation get theirs from EpochCheckpointHook only); on an exception,
    ``last.pt`` at the last whole step."""

    def after_epoch(self, tr: Trainer) -> None:
        if validates_now(tr):
            save_atomic(tr.checkpoint(), tr.weights_dir / "last.pt")

    def on_exception(self, tr: Trainer, exc: BaseException) -> None:
        # counters move only after a whole optimizer step, and the trainer rolled back the BN
        # statistics of an unfinished one, so last.pt is exactly the state after the last step
        save_atomic(tr.checkpoint(), tr.weights_dir / "last.pt")
        log.error(
            "training stopped in epoch %d after %d batches (%s); checkpoint saved. Resume "
            "with: detforge train resume=%s",
            tr.epoch + 1, tr.batch_in_epoch, f"{type(exc).__name__}: {exc}".rstrip(": "),
            tr.weights_dir / "last.pt",
        )  # fmt: skip


class ValidationHook(Hook):
    """Validate the EMA (or model) at ``train.val_interval`` (through the run's task);
    val/*, metrics/* and fitness."""

    def before_train(self, tr: Trainer) -> None:
        tr.task.before_train(tr)

    def after_epoch(self, tr: Trainer) -> None:
        cfg, row = tr.cfg, tr.row
        if not validates_now(tr):
            return
        val, losses, metrics, line = tr.task.validate(tr)
        tr.last_val = val
        row["val_time"] = val.seconds
        row.update({f"val/{k}": v for k, v in losses.items()})
        row.update({f"metrics/{k}": v for k, v in metrics.items()})
        fit = fitness(metrics, cfg.train.fitness)
        row["fitness"] = fit
        tr.validated, tr.metrics, tr.improved = True, metrics, fit > tr.best_fitness
        if tr.improved:
            tr.best_fitness, tr.best_epoch = fit, tr.epoch
        losses = " ".join(f"{k[6:]} {v:.3f}" for k, v in row.items() if k.startswith("train/"))
        log.info(
            "epoch %d/%d  %s  %s%s", tr.epoch, tr.plan.epochs, losses, line,
            "  (best)" if tr.improved else "",
        )  # fmt: skip


class PlateauHook(Hook):
    """Feed the plateau schedule: the main process's value, applied on every process."""

    main_process_only = False

    def after_epoch(self, tr: Trainer) -> None:
        if not tr.schedule.needs_metric:
            return
        monitor = tr.cfg.schedule.monitor
        watched = monitored_value(monitor, tr.row, "schedule.monitor") if tr.validated else None
        watched = broadcast_object(watched, tr.dist)
        if watched is None:
            return
        if tr.schedule.observe(watched, tr.plan.schedule_step(tr.epoch, 0)) and tr.is_main:
            log.info(
                "plateau: %s stalled at %.5g, learning rate cut by %g",
                monitor, watched, tr.cfg.schedule.factor,
            )  # fmt: skip


class EarlyStopHook(Hook):
    """Stop after ``early_stop.patience`` validations without improvement."""

    def __init__(self, cfg: RunConfig):
        es = cfg.early_stop
        self.early_stop = EarlyStopping(es.monitor, es.mode, es.patience, es.min_delta)

    def after_epoch(self, tr: Trainer) -> None:
        if not tr.validated:
            return
        value = monitored_value(tr.cfg.early_stop.monitor, tr.row, "early_stop.monitor")
        if self.early_stop.step(value, tr.epoch):
            tr.request_stop(self.early_stop.reason)

    def state_dict(self) -> dict:
        return self.early_stop.state_dict()

    def load_state_dict(self, state) -> None:
        self.early_stop.load_state_dict(state)


class EpochCheckpointHook(Hook):
    """The epoch's final ``last.pt`` (with the metrics and every hook's state), ``best.pt`` when
    fitness improved, ``epochN.pt`` every ``train.save_period`` epochs."""

    def after_epoch(self, tr: Trainer) -> None:
        period = tr.cfg.train.save_period
        ckpt = tr.checkpoint(tr.metrics)
        save_atomic(ckpt, tr.weights_dir / "last.pt")
        if tr.improved:
            save_atomic(ckpt, tr.weights_dir / "best.pt")
        if period and tr.epoch % period == 0:
            save_atomic(ckpt, tr.weights_dir / f"epoch{tr.epoch}.pt")


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e6
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # KiB on Linux


class ResultsHook(Hook):
    """One ``results.csv`` row per epoch; a resumed run keeps the rows of the epochs done."""

    def before_train(self, tr: Trainer) -> None:
        path = tr.run_dir / "results.csv"
        # a fresh run starts a fresh results.csv even in a reused folder (exist_ok)
        self.results = ResultsCSV.load(path) if tr.resumed else ResultsCSV(path)
        self.results.truncate(tr.epoch)

    def after_epoch(self, tr: Trainer) -> None:
        tr.row["epoch_time"] = tr.epoch_seconds
        tr.row["peak_mem_mb"] = _peak_memory_mb(tr.device)
        self.results.append(tr.row)


class FinishHook(Hook):
    """Validate ``best.pt`` once more; the task reports it (detection: per-class table, COCO
    json and report; classification: per-class table, confusion matrix, hardest images)."""

    def after_train(self, tr: Trainer) -> None:
        best_path = tr.weights_dir / "best.pt"
        if tr.best_epoch == tr.epoch and tr.last_val is not None:
            val = tr.last_val  # best.pt is the model just validated: do not repeat it
        else:
            model = tr.eval_model()
            if best_path.is_file():
                load_model_state(model, model_weights(load_checkpoint(best_path)), str(best_path))
            else:
                log.warning("%s does not exist: validating the last weights instead", best_path)
            val = tr.task.validate_model(tr, model)
        tr.final_metrics, tr.per_class = tr.task.finish(tr, val)
