"""Which settings apply to which task (``train.task``), and the error for one that does not.

Detection and image classification share the engine (optimizer, schedule, clipping, EMA,
accumulation, early stopping, checkpoints) and a few augmentations (flips, colour jitter,
mixup), but each has settings the other would accept and ignore; those are errors naming the
setting instead. As in :mod:`~detforge.config.families`, a setting counts as set when it differs
from its default (a saved ``config.yaml`` lists every key).
"""

from __future__ import annotations

from typing import Any

from .families import _default
from .fields import ConfigError

__all__ = [
    "DETECT_ONLY", "CLASSIFY_ONLY", "CLASSIFIER_NAMES", "CLASSIFY_FITNESS", "DETECT_FITNESS",
    "check_task_settings", "apply_task_defaults",
]  # fmt: skip

# Detection settings with no meaning for a classifier (boxes, anchors, NMS, mosaic, letterbox).
DETECT_ONLY = (
    "model.anchors", "model.bn_momentum", "model.bn_eps", "model.backbone",
    "model.backbone_weights",
    "augment.scale", "augment.translate", "augment.degrees", "augment.shear",
    "augment.perspective", "augment.mosaic", "augment.mosaic9", "augment.copy_paste",
    "augment.close_mosaic", "augment.min_area", "augment.min_side", "augment.max_aspect",
    "augment.min_visible", "augment.multi_scale", "augment.albumentations",
    "loss.box", "loss.cls", "loss.dfl", "loss.coord", "loss.conf", "loss.balance", "loss.iou",
    "loss.cls_loss", "loss.focal_gamma", "loss.focal_alpha", "loss.topk", "loss.alpha",
    "loss.beta", "assign.anchor", "assign.anchor_t", "assign.anchor_iou",
    "data.weighting", "data.fraction", "data.rect_val", "train.stages",
    "eval.conf", "eval.iou", "eval.max_det", "eval.save_json", "eval.augment",
    "tta.transforms", "tta.scales", "tta.merge", "tta.wbf_iou",
)  # fmt: skip
# models/classifier.py CLASSIFIERS (a test holds them equal; the config layer imports no
# models); timm:<name> names any timm model as a classifier
CLASSIFIER_NAMES = ("cnn-s", "efficientnet_b0")
CLASSIFY_ONLY = ("model.dropout", "augment.crop_scale", "augment.auto_augment", "augment.cutmix")

DETECT_FITNESS = {"map50": 0.1, "map50_95": 0.9}
CLASSIFY_FITNESS = {"top1": 1.0}


def apply_task_defaults(cfg: Any) -> None:
    """Task-specific defaults: a classification run left at the detection fitness ranks by
    top-1 accuracy."""
    if cfg.train.task == "classify" and cfg.train.fitness == DETECT_FITNESS:
        cfg.train.fitness = dict(CLASSIFY_FITNESS)


def check_task_settings(cfg: Any) -> None:
    """Raise a ConfigError naming the first setting of ``cfg`` (a RunConfig) that differs from
    its default and does not apply to ``cfg.train.task``."""
    task, name = cfg.train.task, cfg.model.name
    classifier = name in CLASSIFIER_NAMES or name.startswith("timm:")
    if task == "classify" and not classifier:
        raise ConfigError(
            f"model.name: {name!r} is not a classifier; task=classify trains "
            f"{', '.join(CLASSIFIER_NAMES)} or timm:<name> (any timm model)"
        )
    if task == "detect" and classifier:
        raise ConfigError(f"model.name: {name!r} is an image classifier: set task=classify")
    foreign = DETECT_ONLY if task == "classify" else CLASSIFY_ONLY
    for key in foreign:
        sec, name = key.split(".")
        if getattr(getattr(cfg, sec), name) != _default(cfg, key):
            other = "detect" if task == "classify" else "classify"
            raise ConfigError(
                f"{key} applies to task={other} only, not to task={task}. Remove it, or the "
                "recipe or config file that sets it"
            )
    if task == "detect" and cfg.model.weights == "imagenet":
        raise ConfigError(
            "model.weights: 'imagenet' is for task=classify (efficientnet_b0); detectors start "
            "from a detforge checkpoint"
        )
    if task == "classify" and cfg.data.cache == "disk":
        raise ConfigError("data.cache: task=classify caches decoded images in RAM only (ram)")
    if task == "classify" and cfg.train.batch == "auto":
        raise ConfigError(
            "train.batch: 'auto' probes a detector's training step; for task=classify give the "
            "batch as a number"
        )
