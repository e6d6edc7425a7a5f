"""What ``detforge models`` lists: every built-in model with its size and every backbone with
whether its pretrained weights are available, without any network access.

Sizes are computed on the meta device (shapes only: no memory, no arithmetic), so listing every
model takes seconds; parameters and FLOPs depend only on shapes, so they equal
:func:`detforge.models.factory.model_info` of the real model. Pretrained backbone weights are
"available" when their file is already in torchvision's cache; nothing is fetched here.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .backbones import (
    TORCHVISION_BACKBONES,
    build_backbone,
    needed_strides,
    torchvision_weights,
)
from .factory import available_models, build_model, resolve_spec
from .pretrained import cached_weight_file
from .tv_build import TORCHVISION_DETECTORS, backbone_weight_enum, coco_weight_enum
from .tv_detectors import TorchvisionDetector, TVDetectorSpec, is_tv_detector_name

__all__ = ["ModelRow", "model_size", "model_rows", "backbone_rows", "tv_detector_size"]


@dataclass(frozen=True)
class ModelRow:
    name: str
    kind: str  # "anchor-free", "anchor-based", "torchvision" or "backbone"
    params: int
    gflops: float
    pretrained: str


def model_size(build: Callable[[], nn.Module], imgsz: int = 640) -> tuple[int, float]:
    """Parameters and GFLOPs (2 x multiply-adds) at ``imgsz`` of the module ``build()`` makes,
    counted on the meta device."""
    with torch.device("meta"):
        model = build()
    model.eval()
    x = torch.zeros(1, 3, imgsz, imgsz, device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() / 1e9


def model_rows(
    names: list[str] | None = None, imgsz: int = 640, num_classes: int = 80
) -> list[ModelRow]:
    """One row per model name (default: every built-in one, torchvision's detectors last);
    detforge ships no trained detector weights, so ``pretrained`` says so, or for a torchvision
    detector whether its ImageNet backbone and COCO weights are in torchvision's cache."""
    rows = []
    for name in names or [*available_models(), *TORCHVISION_DETECTORS]:
        if is_tv_detector_name(name):
            params, gflops = tv_detector_size(name, num_classes, imgsz)
            rows.append(ModelRow(name, "torchvision", params, gflops, _pretrained_state(name)))
            continue
        kind = "anchor-based" if resolve_spec(name).head == "anchor" else "anchor-free"
        params, gflops = model_size(lambda n=name: build_model(n, num_classes), imgsz)
        rows.append(ModelRow(name, kind, params, gflops, "none"))
    return rows


def _pretrained_state(name: str) -> str:
    """Whether the ImageNet backbone (backbone_weights=imagenet) and the COCO detector
    (weights=coco) files of torchvision detector ``name`` are in torchvision's cache."""
    parts = []
    for label, weights in (
        ("imagenet backbone", backbone_weight_enum(name)), ("coco", coco_weight_enum(name))
    ):  # fmt: skip
        file = cached_weight_file(weights)
        parts.append(
            f"{label}: cached ({file})"
            if file.is_file()
            else f"{label}: not cached ({file.name}; put it in {file.parent})"
        )
    return "; ".join(parts)


def backbone_rows(imgsz: int = 640) -> list[ModelRow]:
    """One row per torchvision backbone (the backbone alone, maps at strides 8, 16, 32) with the
    state of its ImageNet weight file in torchvision's cache, and one for timm."""
    rows = []
    for name in TORCHVISION_BACKBONES:
        file = cached_weight_file(torchvision_weights(name))
        state = (
            f"imagenet: cached ({file})"
            if file.is_file()
            else f"imagenet: not cached ({file.name}; put it in {file.parent})"
        )
        params, gflops = model_size(
            lambda n=name: build_backbone(n, needed_strides((3, 4, 5))), imgsz
        )
        rows.append(ModelRow(name, "backbone", params, gflops, state))
    timm = importlib.util.find_spec("timm") is not None
    note = "timm's own cache" if timm else "timm not installed: pip install 'detforge[timm]'"
    rows.append(ModelRow("timm:<name>", "backbone", 0, 0.0, note))
    return rows


def tv_detector_size(name: str, num_classes: int, imgsz: int = 640) -> tuple[int, float]:
    """Parameters and GFLOPs (2 x multiply-adds) at ``imgsz`` of model ``name``, counted on the
    meta device (shapes only). A two-stage model's box head is counted on the RPN's test-time
    proposal count (1000); RoIAlign and NMS are not counted (no FLOP formula in torch)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = TorchvisionDetector(TVDetectorSpec(name, imgsz), num_classes)
    model.eval()
    x = torch.zeros(1, 3, imgsz, imgsz, device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        feats = list(model.neck(model.backbone(model.normalize(x))).values())
        if isinstance(model.head, nn.ModuleDict):
            rpn, roi = model.head["rpn"], model.head["roi_heads"]
            rpn.head(feats)
            pool = roi.box_roi_pool.output_size
            side = pool if isinstance(pool, int) else pool[0]
            rois = torch.zeros(rpn._post_nms_top_n["testing"], feats[0].shape[1], side, side,
                               device="meta")  # fmt: skip
            roi.box_predictor(roi.box_head(rois))
        else:
            model.head(feats)
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() / 1e9
