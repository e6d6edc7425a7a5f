"""Building torchvision's detectors for detforge (:mod:`detforge.models.tv_detectors` wraps
them): the builder of each model name, its keyword arguments (resize from imgsz, no
normalisation, low pre-NMS floor), pretrained weights through torchvision's cache, new class
layers over COCO weights, and the frozen BatchNorm of a pretrained body."""

from __future__ import annotations

import math
from typing import Any

from torch import nn

__all__ = [
    "TORCHVISION_DETECTORS",
    "SCORE_FLOOR",
    "MAX_CANDIDATES",
    "backbone_weight_enum",
    "coco_weight_enum",
    "builder_kwargs",
    "torchvision_model",
    "freeze_batchnorm",
]

# model name -> (torchvision builder, backbone weight enum, label offset, COCO weight enum)
TORCHVISION_DETECTORS: dict[str, tuple[str, str, int, str]] = {
    "fasterrcnn-r50-fpn": (
        "fasterrcnn_resnet50_fpn", "ResNet50_Weights", 1, "FasterRCNN_ResNet50_FPN_Weights"
    ),
    "retinanet-r50-fpn": (
        "retinanet_resnet50_fpn", "ResNet50_Weights", 0, "RetinaNet_ResNet50_FPN_Weights"
    ),
    "fcos-r50-fpn": ("fcos_resnet50_fpn", "ResNet50_Weights", 0, "FCOS_ResNet50_FPN_Weights"),
    "fasterrcnn-mobilenet": (
        "fasterrcnn_mobilenet_v3_large_fpn", "MobileNet_V3_Large_Weights", 1,
        "FasterRCNN_MobileNet_V3_Large_FPN_Weights",
    ),
}  # fmt: skip
# torchvision's final filter keeps every box detforge's post-processing could keep: scores from
# eval.conf's default, its own NMS off (detforge's class-aware NMS at eval.iou / predict.iou is
# the only one), at most MAX_CANDIDATES boxes per image into that NMS
SCORE_FLOOR = 0.001
MAX_CANDIDATES = 3000


def backbone_weight_enum(name: str) -> Any:
    """torchvision's ImageNet weight enum of model ``name``'s backbone."""
    import torchvision.models as tvm

    return getattr(tvm, TORCHVISION_DETECTORS[name][1]).IMAGENET1K_V1


def coco_weight_enum(name: str) -> Any:
    """torchvision's COCO weight enum of model ``name`` (the whole detector)."""
    import torchvision.models.detection as det

    return getattr(det, TORCHVISION_DETECTORS[name][3]).COCO_V1


def _ensure_cached(weights: Any) -> None:
    from .pretrained import cached_weight_file, torchvision_state

    if not cached_weight_file(weights).is_file():
        torchvision_state(weights)  # fetch under a timeout, or a clear error naming the file


def torchvision_model(name: str, num_classes: int, imgsz: int, pretrained: str | None) -> nn.Module:
    """torchvision's model ``name`` for detforge's ``num_classes``; ``pretrained``: None,
    ``"imagenet"`` (its backbone's weights) or ``"coco"`` (the whole detector's but the class
    layers, which are made anew for ``num_classes``)."""
    import torchvision.models.detection as det

    builder, _, offset, _ = TORCHVISION_DETECTORS[name]
    kwargs = builder_kwargs(name, imgsz)
    if pretrained is not None:
        # every layer trainable: freezing is optim.freeze's job (torchvision would freeze the
        # first layers itself, out of reach of optim.unfreeze_at); BatchNorm stays frozen
        kwargs["trainable_backbone_layers"] = 6 if "mobilenet" in builder else 5
    if pretrained == "coco":
        weights = coco_weight_enum(name)
        _ensure_cached(weights)
        model = getattr(det, builder)(weights=weights, weights_backbone=None, **kwargs)
        _new_class_layers(model, num_classes + offset)
        return model
    weights_backbone = None
    if pretrained == "imagenet":
        weights_backbone = backbone_weight_enum(name)
        _ensure_cached(weights_backbone)
    return getattr(det, builder)(
        weights=None, weights_backbone=weights_backbone, num_classes=num_classes + offset,
        **kwargs,
    )  # fmt: skip


def _new_class_layers(model: nn.Module, num_classes: int) -> None:
    """Replace the class-specific last layers of a COCO model by fresh ones for
    ``num_classes`` (torchvision's own convention, background included), initialised as
    torchvision initialises them."""
    if hasattr(model, "roi_heads"):
        from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

        width = model.roi_heads.box_predictor.cls_score.in_features
        model.roi_heads.box_predictor = FastRCNNPredictor(width, num_classes)
        return
    head = model.head.classification_head  # RetinaNet's and FCOS's have the same layout
    old = head.cls_logits
    conv = nn.Conv2d(old.in_channels, head.num_anchors * num_classes, 3, padding=1)
    nn.init.normal_(conv.weight, std=0.01)
    nn.init.constant_(conv.bias, -math.log((1 - 0.01) / 0.01))  # prior probability 0.01
    head.cls_logits, head.num_classes = conv, num_classes


def builder_kwargs(name: str, imgsz: int) -> dict[str, Any]:
    """What detforge sets in torchvision's builder of model ``name``: the resize (imgsz), no
    normalisation (the model's ``normalize`` does it), the score floor, no final NMS (an IoU
    threshold of 1 suppresses nothing) and the candidate cap. The RPN's proposal NMS stays."""
    kwargs: dict[str, Any] = dict(
        min_size=imgsz, max_size=imgsz, image_mean=[0.0] * 3, image_std=[1.0] * 3
    )
    if TORCHVISION_DETECTORS[name][0].startswith("fasterrcnn"):
        kwargs.update(
            box_score_thresh=SCORE_FLOOR, box_nms_thresh=1.0, box_detections_per_img=MAX_CANDIDATES
        )
    else:
        kwargs.update(score_thresh=SCORE_FLOOR, nms_thresh=1.0, detections_per_img=MAX_CANDIDATES)
    return kwargs


def freeze_batchnorm(module: nn.Module) -> None:
    """Replace every BatchNorm2d under ``module`` by torchvision's FrozenBatchNorm2d, as its
    builders make a pretrained body (default eps, whatever the BatchNorm's)."""
    from torchvision.ops.misc import FrozenBatchNorm2d

    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, FrozenBatchNorm2d(child.num_features))
        else:
            freeze_batchnorm(child)
