"""Config -> model, loss, optimizer and schedule: the adapters shared by the trainer and the
tools that need the same pieces without training (``detforge schedule``, ``detforge lr-find``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from ..config import RunConfig
from ..config.fields import ConfigError
from ..losses import DetectionLoss
from ..losses.detection import loss_kwargs_from_config
from ..models import build_model, model_info
from ..models.norm import set_batchnorm
from ..models.yolo import YOLODetector
from .checkpoint import load_checkpoint, load_model_state, model_weights
from .optim import build_optimizer, optimizer_kwargs_from_config

__all__ = [
    "build_model_from_config",
    "build_loss_from_config",
    "accumulation_steps",
    "build_optimizer_from_config",
]

log = logging.getLogger("detforge")


def build_model_from_config(
    cfg: RunConfig, num_classes: int, device: torch.device, load_weights: bool = True
) -> YOLODetector:
    """The configured architecture with its BatchNorm settings and, if asked, model.weights;
    printed with its size, on ``device`` in channels-last layout."""
    model = build_model(cfg.model.name, num_classes)
    set_batchnorm(model, cfg.model.bn_momentum, cfg.model.bn_eps)
    if cfg.model.weights and load_weights:
        init = load_checkpoint(cfg.model.weights)
        load_model_state(model, model_weights(init), f"model.weights {cfg.model.weights}")
    else:
        model.head.reset_bias(cfg.train.imgsz)
    info = model_info(model, cfg.train.imgsz)
    log.info(
        "model %s: %d classes, %.2f M parameters, %.2f GFLOPs at %d",
        cfg.model.name, num_classes, info["params"] / 1e6, info["gflops"], cfg.train.imgsz,
    )  # fmt: skip
    return model.to(device, memory_format=torch.channels_last)


def build_loss_from_config(
    cfg: RunConfig, model: YOLODetector, train_labels: Sequence[np.ndarray], names: Sequence[str]
) -> DetectionLoss:
    loss = DetectionLoss(
        model.nc, model.strides, model.reg_max,
        **loss_kwargs_from_config(cfg.loss, model.nc, train_labels),
    )  # fmt: skip
    weights = loss.cls_term.class_weights
    if weights is not None:
        pairs = zip(names, weights.tolist(), strict=True)
        log.info("class weights: %s", ", ".join(f"{n} {w:.3g}" for n, w in pairs))
    return loss


def accumulation_steps(cfg: RunConfig, world_size: int = 1) -> int:
    """Batches per optimizer step: train.accumulate, or derived from train.nominal_batch."""
    if cfg.train.nominal_batch:
        return max(1, round(cfg.train.nominal_batch / (cfg.train.batch * world_size)))
    return cfg.train.accumulate


def build_optimizer_from_config(
    cfg: RunConfig, model: torch.nn.Module, effective_batch: int
) -> tuple[torch.optim.Optimizer, float]:
    """The optimizer and the weight decay it uses (scaled by the effective batch)."""
    wd = cfg.optim.weight_decay
    if cfg.optim.wd_batch_ref:
        wd *= effective_batch / cfg.optim.wd_batch_ref
    if cfg.optim.unfreeze_at and not cfg.optim.freeze:
        raise ConfigError("optim.unfreeze_at is set but optim.freeze lists nothing to freeze")
    return build_optimizer(model, **optimizer_kwargs_from_config(cfg.optim, wd)), wd
