"""Commands that use the training pieces without training: the schedule plot and lr-find."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import torch

from ..config import ConfigError, RunConfig
from ..infer.device import resolve_amp, select_device
from ..losses.factory import build_loss_for_model
from ..models.factory import build_model_from_config
from ..models.tv_detectors import is_tv_detector_name
from ..utils.atomic import write_text_atomic
from .anchors import prepare_anchors
from .checkpoint import load_initial_weights
from .gradients import GradientClipper
from .optim import build_optimizer_from_config
from .plan import plan_run
from .rundir import make_run_dir
from .schedule import is_bias_group
from .setup_data import build_data
from .state import seed_everything

__all__ = ["plot_schedule_from_config", "lr_find_from_config"]

log = logging.getLogger("detforge")


def plot_schedule_from_config(cfg: RunConfig, out_png: str | Path) -> Path:
    """Draw the learning rate of every parameter group over the configured run."""
    from ..data.datayaml import load_data_yaml
    from .schedule_plot import plot_schedule
    from .setup_data import build_train_set, resolve_data_yaml

    if cfg.train.task == "classify":
        from ..data.imagefolder import load_classify_data
        from ..models.classifier import build_classifier

        data = load_classify_data(cfg.data.path, skip_corrupt=True)
        n_train, names = len(data.splits["train"]), data.names
        model = build_classifier(cfg.model.name, len(names), cfg.model.dropout)
    else:
        spec = load_data_yaml(resolve_data_yaml(cfg))
        n_train = len(build_train_set(cfg, spec))
        model = build_model_from_config(cfg.model, len(spec.names), cfg.train.imgsz)
    plan = plan_run(cfg, n_train)
    opt, _ = build_optimizer_from_config(cfg.optim, model, cfg.train.batch * plan.accumulate)
    groups = [
        (g["name"], g["initial_lr"] / cfg.optim.lr0, is_bias_group(g)) for g in opt.param_groups
    ]
    # the schedule runs on the plan's step grid (the first stage's steps per epoch), as in
    # training, whatever the batch of later stages
    plot_schedule(
        cfg.schedule, lr0=cfg.optim.lr0, momentum=cfg.optim.momentum, epochs=plan.epochs,
        steps_per_epoch=plan.steps_per_epoch, out_png=out_png, groups=groups,
    )  # fmt: skip
    log.info("%d training images:\n%s", n_train, plan.describe())
    return Path(out_png)


def lr_find_from_config(
    cfg: RunConfig, iters: int = 100, start_lr: float = 1e-7, end_lr: float = 1.0
):
    """Exponential learning-rate sweep on the training data; writes lr_find.png and .csv."""
    from .lr_find import lr_range_test, plot_lr_find

    if is_tv_detector_name(cfg.model.name):
        raise ConfigError(
            f"lr-find: model {cfg.model.name!r} (a torchvision detector) is not supported yet; "
            "it covers detforge's YOLO models"
        )
    seed_everything(cfg.train.seed)
    device = select_device(cfg.train.device)
    if cfg.train.task == "classify":
        from .classify_task import ClassifyTask

        task = ClassifyTask()  # the data, model and loss a classification run trains with
        data = task.build_data(cfg, 0, 1, cfg.train.imgsz, cfg.train.batch)
        model = task.build_model(cfg, data, load_weights=True)
        model = model.to(device, memory_format=torch.channels_last)
        loss_fn, target_key = task.build_loss(cfg, model, data), "cls"
    else:
        data = build_data(cfg)
        model = build_model_from_config(cfg.model, len(data.names), cfg.train.imgsz)
        if cfg.model.weights:
            load_initial_weights(model, cfg.model.weights)
        model = model.to(device, memory_format=torch.channels_last)
        ts = data.train_set
        prepare_anchors(
            model, ts.labels, ts.shapes, cfg.train.imgsz, cfg.assign.anchor_t,
            cfg.model.anchors, cfg.train.seed,
        )  # fmt: skip
        loss_fn = build_loss_for_model(cfg, model, ts.labels, data.names)
        target_key = "targets"
    accumulate = plan_run(cfg, len(data.train_set)).accumulate
    opt, _ = build_optimizer_from_config(cfg.optim, model, cfg.train.batch * accumulate)
    clip = cfg.clip
    result = lr_range_test(
        model, loss_fn, data.train_loader, opt, start_lr=start_lr, end_lr=end_lr, iters=iters,
        device=device, amp_dtype=resolve_amp(cfg.train.amp, device),
        clipper=GradientClipper(clip.mode, clip.max_norm, clip.norm_type, clip.max_value),
        accumulate=accumulate, target_key=target_key,
    )  # fmt: skip
    out = make_run_dir(cfg.train.project, cfg.train.name, cfg.train.exist_ok)
    plot_lr_find(result, out / "lr_find.png")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["lr", "loss", "smoothed"])
    writer.writerows(zip(result.lrs, result.losses, result.smoothed, strict=True))
    write_text_atomic(out / "lr_find.csv", buf.getvalue())
    return result, out
