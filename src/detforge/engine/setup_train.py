"""The trainer's set-up: its parts (built before any file is written) and its run folder."""

from __future__ import annotations

import logging
import math
from logging.handlers import MemoryHandler
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..config import ConfigError, RunConfig, dump_config
from ..losses.factory import build_loss_for_model
from ..models.factory import build_model_from_config
from .anchors import prepare_anchors
from .checkpoint import load_initial_weights
from .distributed import DistInfo, broadcast_object
from .ema import ModelEMA
from .gradients import GradientClipper
from .hooks import HookList, build_hooks
from .optim import build_optimizer_from_config, describe_param_groups
from .plan import plan_run
from .resume import resume_run_dir
from .rundir import attach_log_file, make_run_dir, write_text_atomic
from .schedule import build_schedule_from_config
from .setup_data import build_data
from .stages import plan_stages
from .stepper import Stepper

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["build_parts", "open_run_folder", "epoch_row"]

log = logging.getLogger("detforge")


def build_parts(tr: Trainer, load_weights: bool) -> None:
    """Data, model, loss, optimizer, plan, schedule, stepper and hooks of ``tr`` (no files
    are written, so a bad dataset or setting fails before a run folder exists)."""
    cfg, dist, t = tr.cfg, tr.dist, tr.cfg.train
    first = plan_stages(t.stages, t.epochs, t.imgsz, t.batch)[0]
    tr.data = build_data(cfg, dist.rank, dist.world_size, first.imgsz, first.batch)
    model = build_model_from_config(cfg.model, len(tr.data.names), t.imgsz, load_weights)
    if cfg.model.weights and load_weights:
        load_initial_weights(model, cfg.model.weights)
    if load_weights:  # on resume the checkpoint's anchors are loaded with its weights
        train_set = tr.data.train_set
        prepare_anchors(
            model, train_set.labels, train_set.shapes, t.imgsz, cfg.assign.anchor_t,
            cfg.model.anchors, t.seed,
        )  # fmt: skip
    tr.model = model.to(tr.device, memory_format=torch.channels_last)
    if dist.enabled and cfg.optim.unfreeze_at:
        raise ConfigError(
            "optim.unfreeze_at is not supported with torchrun yet (DDP fixes the trained "
            "parameters at start); freeze for the whole run or train in one process"
        )
    m = tr.model
    tr.loss_fn = build_loss_for_model(cfg, m, tr.data.train_set.labels, tr.data.names)
    tr.plan = plan_run(cfg, len(tr.data.train_set), dist.world_size)
    tr.accumulate = tr.plan.accumulate
    eff_batch = t.batch * tr.accumulate * dist.world_size
    tr.optimizer, wd = build_optimizer_from_config(cfg.optim, tr.model, eff_batch)
    log.info("parameter groups:\n%s", describe_param_groups(tr.optimizer))
    if len(tr.plan.stages) > 1:
        log.info("stages:\n%s", tr.plan.describe())
    tr.schedule = build_schedule_from_config(cfg, tr.plan.steps_per_epoch)
    log.info("schedule: %s", tr.schedule.describe())
    fp16 = tr.device.type == "cuda" and tr.amp_dtype == torch.float16
    tr.scaler = torch.amp.GradScaler("cuda", enabled=fp16)
    c = cfg.clip
    clipper = GradientClipper(c.mode, c.max_norm, c.norm_type, c.max_value)
    tr.ema = ModelEMA(tr.model, t.ema_decay, t.ema_tau) if t.ema else None
    tr.stepper = Stepper(
        tr.model, tr.loss_fn, tr.optimizer, tr.scaler, clipper, tr.ema, tr.device,
        tr.amp_dtype, t.max_nonfinite, dist,
    )  # fmt: skip
    tr.hooks = HookList(build_hooks(cfg, tr.user_hooks), tr.is_main)
    log.info(
        "optimizer %s lr0 %g, weight decay %g (effective batch %d = %d x accumulate %d), "
        "amp %s, device %s",
        cfg.optim.name, cfg.optim.lr0, wd, eff_batch, t.batch, tr.accumulate,
        str(tr.amp_dtype).replace("torch.", "") if tr.amp_dtype else "off", tr.device,
    )  # fmt: skip


def open_run_folder(
    cfg: RunConfig, ckpt: dict | None, dist: DistInfo, early_log: MemoryHandler
) -> tuple[Path, bool, logging.Handler | None]:
    """Create (or, resuming, find) the run folder; the main process writes ``config.yaml`` and
    ``train.log``, which starts with the set-up's records held in ``early_log``.

    Returns the folder, whether it is the resumed checkpoint's own run, and the log handler.
    """
    placed = None
    if dist.is_main:
        if ckpt is not None:
            folder, own = resume_run_dir(cfg.train.resume, ckpt, cfg)
        else:
            t = cfg.train
            folder, own = make_run_dir(t.project, t.name, t.exist_ok), True
        placed = (str(folder), own)
    folder, own = broadcast_object(placed, dist)
    run_dir, handler = Path(folder), None
    if dist.is_main:
        (run_dir / "weights").mkdir(parents=True, exist_ok=True)
        handler = attach_log_file(log, run_dir / "train.log")
        early_log.setTarget(handler)
        early_log.flush()
        write_text_atomic(run_dir / "config.yaml", dump_config(cfg))
        log.info("run folder: %s", run_dir)
        if dist.enabled:
            log.info("distributed: %d processes", dist.world_size)
    return run_dir, own, handler


def epoch_row(epoch: int, sums: dict, skipped_steps: int, optimizer) -> dict:
    """The ``results.csv`` row of epoch ``epoch`` (0-based) from its running sums."""
    n = max(sums["batches"], 1)
    row: dict = {"epoch": epoch + 1}
    row.update({f"train/{k}": v / n for k, v in sums["loss"].items()})
    finite = [g for g in sums["grad_norms"] if math.isfinite(g)]
    if finite:
        row["grad_norm/mean"] = sum(finite) / len(finite)
        row["grad_norm/max"] = max(finite)
    row["skipped_steps"] = skipped_steps
    for g in optimizer.param_groups:
        row[f"lr/{g['name']}"] = g["lr"]
    return row
