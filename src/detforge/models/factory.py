"""Model names and YAML files (``model.name``) with a backbone (``model.backbone``, pretrained
weights ``model.backbone_weights``) -> :class:`YOLODetector`, plus size reporting."""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml
from torch import nn

from ..config.fields import ConfigError, suggest
from .backbones import build_backbone, check_backbone_name, needed_strides
from .norm import set_batchnorm
from .tv_detectors import (
    TORCHVISION_DETECTORS,
    TorchvisionDetector,
    build_tv_detector,
    is_tv_detector_name,
)
from .yolo import ModelSpec, YOLODetector

if TYPE_CHECKING:
    from ..config.schema import ModelSection

__all__ = [
    "resolve_spec",
    "build_model",
    "build_model_from_config",
    "model_info",
    "available_models",
]

log = logging.getLogger("detforge")

_NAME = re.compile(r"^(?P<family>[a-z0-9]+)-(?P<scale>[a-z]+)(?:-(?P<levels>[a-z0-9]+))?$")


def _family_yaml(family: str) -> Path | None:
    p = resources.files("detforge.models") / "configs" / f"{family}.yaml"
    return Path(str(p)) if p.is_file() else None


def available_models() -> list[str]:
    """Every built-in model name (family x scale x level set)."""
    out = []
    folder = resources.files("detforge.models") / "configs"
    for f in sorted(folder.iterdir(), key=lambda p: p.name):
        if not f.name.endswith(".yaml"):
            continue
        cfg = yaml.safe_load(f.read_text())
        fam = f.name[:-5]
        for s in cfg["scales"]:
            for lv in cfg["levels"]:
                out.append(f"{fam}-{s}" + ("" if lv == "default" else f"-{lv}"))
    return out


def _scaled(c: int, width: float, cap: int) -> int:
    # channels stay multiples of 8 for efficient kernels
    return max(8, int(math.ceil(min(c, cap) * width / 8) * 8))


def spec_from_dict(cfg: dict[str, Any], scale: str, levels: str, name: str, src: str) -> ModelSpec:
    """Apply a scale and level set to a family description (the YAML's content)."""
    try:
        scales, bb = cfg["scales"], cfg["backbone"]
        if scale not in scales:
            raise ConfigError(f"{src}: unknown scale '{scale}'{suggest(scale, scales)}")
        if levels not in cfg["levels"]:
            raise ConfigError(
                f"{src}: unknown level set '{levels}'{suggest(levels, cfg['levels'])}"
            )
        sc = scales[scale]
        d, w, cap = float(sc["depth"]), float(sc["width"]), int(sc["max_channels"])
        stages = bb["stages"]
        if len(stages) != 4:
            raise ConfigError(f"{src}: backbone.stages must list 4 stages (P2..P5)")
        lv = tuple(sorted(int(k) for k in cfg["levels"][levels]))
        if not lv or lv[0] < 2 or lv[-1] > 5 or lv != tuple(range(lv[0], lv[-1] + 1)):
            raise ConfigError(f"{src}: levels.{levels} must be consecutive levels within 2..5")
        head = cfg.get("head", {})
        kind = str(head.get("type", "dfl"))
        if kind not in ("dfl", "anchor"):
            raise ConfigError(f"{src}: head.type {kind!r} is not one of 'dfl', 'anchor'")
        anchors = _anchors(cfg, levels, len(lv), src) if kind == "anchor" else ()
        return ModelSpec(
            stem=_scaled(int(bb["stem"]), w, cap),
            channels=tuple(_scaled(int(s["channels"]), w, cap) for s in stages),
            blocks=tuple(max(1, round(int(s["blocks"]) * d)) for s in stages),
            neck_blocks=max(1, round(int(cfg["neck"]["blocks"]) * d)),
            sppf_kernel=int(bb.get("sppf_kernel", 5)),
            levels=lv,
            reg_max=0 if kind == "anchor" else int(cfg.get("reg_max", 16)),
            cls_branch=str(head.get("cls_branch", "dw")),
            name=name,
            head=kind,
            anchors=anchors,
        )
    except KeyError as e:
        raise ConfigError(f"{src}: missing key {e}") from None


def _anchors(cfg: dict[str, Any], levels: str, n_levels: int, src: str) -> tuple:
    """``anchors.<level set>``: one list of (w, h) pairs in pixels per level, A pairs each."""
    table = cfg.get("anchors")
    if not isinstance(table, dict) or levels not in table:
        raise ConfigError(f"{src}: an anchor head needs anchors.{levels} (w, h pairs per level)")
    rows = table[levels]
    where = f"{src}: anchors.{levels}"
    if not isinstance(rows, list) or len(rows) != n_levels:
        raise ConfigError(f"{where}: expected {n_levels} lists (one per level)")
    out = []
    for row in rows:
        if (
            not isinstance(row, list)
            or not row
            or len(row) % 2
            or not all(isinstance(v, int | float) and v > 0 for v in row)
        ):
            raise ConfigError(f"{where}: {row!r} is not a list of positive w, h pairs")
        out.append(tuple(float(v) for v in row))
    if len({len(r) for r in out}) != 1:
        raise ConfigError(f"{where}: every level needs the same number of anchors")
    return tuple(out)


def resolve_spec(name: str, backbone: str = "csp") -> ModelSpec:
    """``yolo-n``, ``yolo-s-p2``, or ``path/to/model.yaml[:scale[:levels]]``, with the backbone
    ``backbone`` (``csp``, ``resnet18|34|50``, ``timm:<name>``)."""
    check_backbone_name(backbone)
    return dataclasses.replace(_resolve_name(name), backbone=backbone)


def _resolve_name(name: str) -> ModelSpec:
    if name.endswith(".yaml") or ".yaml:" in name:
        path, _, rest = name.partition(".yaml")
        path = Path(path + ".yaml")
        scale, _, levels = rest.lstrip(":").partition(":")
        if not path.is_file():
            raise ConfigError(f"model.name: model file {path} does not exist")
        cfg = yaml.safe_load(path.read_text())
        scale = scale or next(iter(cfg.get("scales", {"n": 0})))
        return spec_from_dict(cfg, scale, levels or "default", name, str(path))
    m = _NAME.match(name)
    yaml_path = _family_yaml(m["family"]) if m else None
    if yaml_path is None:
        known = [*available_models(), *TORCHVISION_DETECTORS]
        raise ConfigError(
            f"model.name: unknown model '{name}'{suggest(name, known)}; "
            f"built-in models: {', '.join(known)}"
        )
    cfg = yaml.safe_load(yaml_path.read_text())
    return spec_from_dict(cfg, m["scale"], m["levels"] or "default", name, f"model.name: '{name}'")


def build_model(
    name: str | ModelSpec,
    num_classes: int,
    backbone: str | None = None,
    backbone_weights: str | None = None,
) -> YOLODetector:
    """Build a detector for ``num_classes`` classes, untrained but for the backbone's
    ``backbone_weights`` (None, ``"imagenet"`` or a state-dict file). ``backbone`` (default:
    the spec's, ``csp`` for a name) replaces the spec's."""
    if num_classes < 1:
        raise ConfigError(f"a detector needs at least one class, got {num_classes}")
    spec = name if isinstance(name, ModelSpec) else resolve_spec(name)
    if backbone is not None:
        check_backbone_name(backbone)
        spec = dataclasses.replace(spec, backbone=backbone)
    if spec.backbone == "csp":
        if backbone_weights is not None:
            raise ConfigError(
                "model.backbone_weights: the csp backbone has no pretrained weights; choose a "
                "torchvision or timm backbone (model.backbone) or leave backbone_weights null"
            )
        return YOLODetector(spec, num_classes)
    net = build_backbone(spec.backbone, needed_strides(spec.levels), backbone_weights)
    return YOLODetector(spec, num_classes, backbone=net)


def build_model_from_config(
    section: ModelSection, num_classes: int, imgsz: int, pretrained: bool = True
) -> YOLODetector | TorchvisionDetector:
    """The ``model`` section -> an untrained detector: architecture (``model.name``,
    ``model.backbone``), the backbone's ``model.backbone_weights`` unless ``pretrained`` is False
    (a resumed run's weights come from its checkpoint, so the file is not needed), BatchNorm
    settings, head biases at their prior for ``imgsz``; logged with its size. ``model.weights``
    is loaded by the caller (``detforge.engine.checkpoint.load_initial_weights``)."""
    if is_tv_detector_name(section.name):
        return _build_tv_from_config(section, num_classes, imgsz, pretrained)
    weights = section.backbone_weights if pretrained else None
    model = build_model(section.name, num_classes, section.backbone, weights)
    set_batchnorm(model, section.bn_momentum, section.bn_eps)
    model.head.reset_bias(imgsz)
    info = model_info(model, imgsz)
    backbone = "" if section.backbone == "csp" else f" (backbone {section.backbone})"
    log.info(
        "model %s%s: %d classes, %.2f M parameters, %.2f GFLOPs at %d",
        section.name, backbone, num_classes, info["params"] / 1e6, info["gflops"], imgsz,
    )  # fmt: skip
    return model


def _build_tv_from_config(
    section: ModelSection, num_classes: int, imgsz: int, pretrained: bool
) -> TorchvisionDetector:
    """A torchvision detector (models/tv_detectors.py) with ``model.backbone_weights=imagenet``
    or ``model.weights=coco`` when asked; its BatchNorm and head initialisation are
    torchvision's own. A pretrained model's frozen BatchNorm is built even when the weights are
    not loaded (``pretrained`` False: they come from a checkpoint)."""
    name, coco = section.name, section.weights == "coco"
    try:
        model = build_tv_detector(
            name, num_classes, imgsz, section.backbone_weights, pretrained,
            weights="coco" if coco else None,
        )  # fmt: skip
    except ValueError as e:
        raise ConfigError(str(e)) from None
    params = sum(p.numel() for p in model.parameters())
    source = (
        " (COCO weights)" if coco else " (ImageNet backbone)" if section.backbone_weights else ""
    )
    log.info(
        "model %s%s: %d classes, %.2f M parameters, torchvision's internal resize %d px",
        name, source, num_classes, params / 1e6, imgsz,
    )  # fmt: skip
    return model


def model_info(model: nn.Module, imgsz: int = 640) -> dict[str, float]:
    """Parameters and GFLOPs (2 x multiply-adds, the convention of the YOLO literature)."""
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in model.parameters())
    was_training = model.training
    model.eval()
    p = next(model.parameters())
    x = torch.zeros(1, 3, imgsz, imgsz, device=p.device, dtype=p.dtype)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return {"params": params, "gflops": counter.get_total_flops() / 1e9, "imgsz": imgsz}
