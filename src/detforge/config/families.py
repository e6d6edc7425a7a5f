"""Which settings apply to which model family, and the error for one that does not.

The anchor-free head (``yolo-*``) and the anchor head (``yolov5-*``) share the classification
options but have their own box terms and matching, so a setting of the other family would be
accepted and ignored; it is an error naming it instead. A setting counts as set when it differs
from its default: a saved ``config.yaml`` lists every key, so being present in a layer says
nothing.

The family is read from the model YAML's ``head.type`` (plain YAML, so the config layer needs no
model code); a name that does not resolve is left to the model factory to report.

torchvision's detectors (``fasterrcnn-r50-fpn``, ...) compute their own loss, assignment and
resize: every loss, assignment, anchor, backbone and BatchNorm setting, multi-scale and staged
training, test-time augmentation, ``train.batch=auto`` and validation-loss monitors are refused
for them, and so are thresholds their built-in pre-NMS filter would cut (a ``conf`` below
:data:`TV_SCORE_FLOOR`, a ``max_det`` above :data:`TV_MAX_CANDIDATES`).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from .fields import ConfigError, yaml_load

__all__ = [
    "ANCHOR_ONLY", "ANCHOR_FREE_ONLY", "TORCHVISION_DETECTORS", "TORCHVISION_FOREIGN",
    "head_type", "check_family_settings",
]  # fmt: skip

ANCHOR_ONLY = (
    "model.anchors", "loss.coord", "loss.conf", "loss.balance",
    "assign.anchor", "assign.anchor_t", "assign.anchor_iou",
)  # fmt: skip
ANCHOR_FREE_ONLY = ("loss.box", "loss.dfl", "loss.topk", "loss.alpha", "loss.beta")

# models/tv_build.py TORCHVISION_DETECTORS, SCORE_FLOOR and MAX_CANDIDATES (a test holds them
# equal; the config layer imports no models)
TORCHVISION_DETECTORS = (
    "fasterrcnn-r50-fpn", "retinanet-r50-fpn", "fcos-r50-fpn", "fasterrcnn-mobilenet",
)  # fmt: skip
TV_SCORE_FLOOR = 0.001
TV_MAX_CANDIDATES = 3000
TORCHVISION_FOREIGN = (
    *ANCHOR_ONLY, *ANCHOR_FREE_ONLY, "loss.cls", "loss.iou", "loss.cls_loss", "loss.focal_gamma",
    "loss.focal_alpha", "loss.label_smoothing", "loss.cls_weights", "model.backbone",
    "model.bn_momentum", "model.bn_eps", "augment.multi_scale", "train.stages", "eval.augment",
    "predict.augment",
)  # fmt: skip

_BUILT_IN = Path(__file__).resolve().parents[1] / "models" / "configs"
_NAME = re.compile(r"^(?P<family>[a-z0-9]+)-[a-z]+(?:-[a-z0-9]+)?$")


def head_type(model_name: str) -> str | None:
    """``"anchor"`` or ``"dfl"`` for a built-in name or model YAML, None if it does not resolve."""
    if model_name.endswith(".yaml") or ".yaml:" in model_name:
        path = Path(model_name.partition(".yaml")[0] + ".yaml")
    else:
        m = _NAME.match(model_name)
        path = _BUILT_IN / f"{m['family']}.yaml" if m else None
    if path is None or not path.is_file():
        return None
    try:
        tree = yaml_load(path.read_text()) or {}
    except Exception:
        return None  # the model factory reports a broken file with its name
    head = tree.get("head") if isinstance(tree, dict) else None
    return str(head.get("type", "dfl")) if isinstance(head, dict) else "dfl"


def _default(cfg: Any, key: str) -> Any:
    sec, name = key.split(".")
    f = next(f for f in dataclasses.fields(getattr(cfg, sec)) if f.name == name)
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def check_family_settings(cfg: Any) -> None:
    """Raise a ConfigError naming the first setting of ``cfg`` (a RunConfig) that differs from
    its default and does not apply to ``cfg.model.name`` (or to its backbone)."""
    if cfg.model.name in TORCHVISION_DETECTORS:
        _check_torchvision(cfg)
        return
    if cfg.model.weights == "coco":
        raise ConfigError(
            f"model.weights: 'coco' (torchvision's COCO-trained weights) is for "
            f"{', '.join(TORCHVISION_DETECTORS)}; {cfg.model.name!r} starts from a detforge "
            "checkpoint"
        )
    if cfg.model.backbone == "csp" and cfg.model.backbone_weights is not None:
        raise ConfigError(
            "model.backbone_weights: the csp backbone (model.backbone's default) has no "
            "pretrained weights; choose a torchvision or timm backbone or leave it null"
        )
    kind = head_type(cfg.model.name)
    if kind is None:
        return
    foreign = ANCHOR_FREE_ONLY if kind == "anchor" else ANCHOR_ONLY
    for key in foreign:
        sec, name = key.split(".")
        if getattr(getattr(cfg, sec), name) != _default(cfg, key):
            family = "anchor-based" if kind == "anchor" else "anchor-free"
            own = ANCHOR_ONLY if kind == "anchor" else ANCHOR_FREE_ONLY
            twin = (
                " (recipes finetune and small-objects set loss.box and loss.dfl; for an anchor "
                "head use recipe=finetune-yolov5 or yolov5-tuned)"
                if kind == "anchor"
                else ""
            )
            raise ConfigError(
                f"{key} does not apply to model {cfg.model.name!r} ({family} head); its own "
                f"settings are {', '.join(own)}. Remove it, or the recipe or config file that "
                f"sets it{twin}"
            )


def _check_torchvision(cfg: Any) -> None:
    name = cfg.model.name
    for key in TORCHVISION_FOREIGN:
        sec, field = key.split(".")
        if getattr(getattr(cfg, sec), field) != _default(cfg, key):
            raise ConfigError(
                f"{key} does not apply to model {name!r} (a torchvision detector: its loss, "
                "matching, BatchNorm and resize are its own, the resize fixed at train.imgsz). "
                "Remove it, or the recipe or config file that sets it (recipe=finetune-torchvision "
                "is recipe=finetune without its YOLO loss and BatchNorm settings)"
            )
    if cfg.model.weights == "coco" and cfg.model.backbone_weights is not None:
        raise ConfigError(
            "model.backbone_weights: model.weights=coco holds the backbone too; leave "
            "backbone_weights null"
        )
    if cfg.model.backbone_weights not in (None, "imagenet"):
        raise ConfigError(
            f"model.backbone_weights: {name!r} takes 'imagenet' (torchvision's ImageNet backbone "
            f"through its cache) or null, not {cfg.model.backbone_weights!r}"
        )
    if cfg.train.batch == "auto":
        raise ConfigError(
            f"train.batch: 'auto' probes a YOLO training step; for {name!r} give a number"
        )
    monitors = {"early_stop.monitor": cfg.early_stop.monitor}
    if cfg.schedule.name == "plateau":  # the only schedule that reads schedule.monitor
        monitors["schedule.monitor"] = cfg.schedule.monitor
    for key, value in monitors.items():
        if value.startswith("val/"):
            raise ConfigError(
                f"{key}: {name!r} computes no validation losses (torchvision's detectors give "
                "losses in training mode only); monitor a metric such as map50_95 or fitness"
            )
    for sec in ("eval", "predict"):
        section = getattr(cfg, sec)
        if section.conf < TV_SCORE_FLOOR:
            raise ConfigError(
                f"{sec}.conf: {section.conf} is below {TV_SCORE_FLOOR}, the score under which "
                f"{name!r} drops detections itself"
            )
        if section.max_det > TV_MAX_CANDIDATES:
            raise ConfigError(
                f"{sec}.max_det: {section.max_det} is above {TV_MAX_CANDIDATES}, the boxes per "
                f"image {name!r} hands to the NMS"
            )
