"""torchvision's detectors as a detforge model family (``model=fasterrcnn-r50-fpn``,
``retinanet-r50-fpn``, ``fcos-r50-fpn``, ``fasterrcnn-mobilenet``).

:class:`TorchvisionDetector` wraps one of them so the rest of detforge sees the parts and the
interfaces it knows:

- its parameters are named ``backbone.*`` (the ResNet / MobileNet body), ``neck.*`` (the FPN)
  and ``head.*`` (``head.rpn`` + ``head.roi_heads``, or RetinaNet's / FCOS's ``head``), so
  ``optim.groups`` patterns and ``recipe=finetune-torchvision``'s per-part learning rates
  select them;
- input normalisation (ImageNet mean / std) is a :class:`~detforge.models.norm.Normalize` in
  front, held in the state dict, and torchvision's own transform normalises with 0 / 1;
- torchvision's internal resize is ``min_size = max_size = imgsz``: a letterboxed imgsz x imgsz
  batch goes through unscaled (a rectangular validation batch too, its long side being imgsz);
- training: ``forward(x, targets)`` returns torchvision's dict of mean losses;
- inference: ``forward(x)`` returns ``[boxes (B, D, 4) xyxy input pixels, scores (B, D, K)]``,
  one detection per row with its score in its class's column (zeros elsewhere; padded rows all
  zero), which :meth:`decode` hands to detforge's post-processing (threshold, class-aware NMS,
  cap) like the decoded maps of a YOLO head.

Labels: detforge's classes are 0..K-1. Faster R-CNN reserves 0 for the background, so its
targets are ``class + 1`` and its predicted labels ``- 1`` (:attr:`label_offset`); RetinaNet
and FCOS take the classes as they are.

torchvision's own final filter is opened up (scores from :data:`SCORE_FLOOR`, its NMS off, at
most :data:`MAX_CANDIDATES` boxes) so that ``conf``, ``iou`` and ``max_det`` of ``eval`` and
``predict`` act in detforge's post-processing, as for a YOLO model; the config layer rejects a
conf below the floor or a max_det above the cap for this family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .norm import IMAGENET_MEAN, IMAGENET_STD, Normalize
from .tv_build import (
    MAX_CANDIDATES,
    SCORE_FLOOR,
    TORCHVISION_DETECTORS,
    freeze_batchnorm,
    torchvision_model,
)

__all__ = [
    "TORCHVISION_DETECTORS",
    "SCORE_FLOOR",
    "MAX_CANDIDATES",
    "TVDetectorSpec",
    "TorchvisionDetector",
    "build_tv_detector",
    "is_tv_detector_name",
]


def is_tv_detector_name(name: str) -> bool:
    return name in TORCHVISION_DETECTORS


@dataclass(frozen=True)
class TVDetectorSpec:
    """What rebuilds the architecture from a checkpoint (``arch`` tells it from a YOLO spec)."""

    name: str
    imgsz: int
    arch: str = "torchvision"
    # the body's BatchNorm is torchvision's FrozenBatchNorm2d (a pretrained backbone): its
    # state dict differs from BatchNorm2d's, so a checkpoint's model is rebuilt with it
    frozen_bn: bool = False


class TorchvisionDetector(nn.Module):
    """A torchvision detector with detforge's part names, normalisation and outputs (see the
    module doc). ``nc``: detforge's number of classes."""

    def __init__(self, spec: TVDetectorSpec, num_classes: int, pretrained: str | None = None):
        """pretrained: None, "imagenet" or "coco" (see :func:`build_tv_detector`); a pretrained
        model's body has frozen BatchNorm, so its spec says ``frozen_bn``."""
        super().__init__()
        if spec.name not in TORCHVISION_DETECTORS:
            raise ValueError(f"unknown torchvision detector {spec.name!r}")
        self.spec, self.nc = spec, num_classes
        self.label_offset = TORCHVISION_DETECTORS[spec.name][2]
        if pretrained is not None and not spec.frozen_bn:
            raise ValueError("a pretrained body has frozen BatchNorm: spec.frozen_bn=True")
        tv = torchvision_model(spec.name, num_classes, spec.imgsz, pretrained)
        if spec.frozen_bn and pretrained is None:  # rebuilt from a checkpoint: same modules
            freeze_batchnorm(tv.backbone.body)
        self.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD)
        # the parts are registered here under detforge's names; torchvision's model keeps
        # pointing at the same modules and runs them, unregistered (no second set of names)
        self.backbone, self.neck = tv.backbone.body, tv.backbone.fpn
        if hasattr(tv, "roi_heads"):
            self.head = nn.ModuleDict({"rpn": tv.rpn, "roi_heads": tv.roi_heads})
        else:
            self.head = tv.head
        object.__setattr__(self, "tv_model", tv)
        # under autocast the convolutions and linear layers run in bf16 / fp16, but torchvision
        # decodes boxes in the dtype of the regression outputs: in bf16 a coordinate near 600 px
        # would be off by up to 2 px. The outputs of the learned parts are cast back to fp32 so
        # anchors, proposals, decoding and losses stay fp32.
        for part in self._learned_parts():
            part.register_forward_hook(_outputs_to_fp32)
        self.decoded_outputs = True  # inference gives boxes and scores, not per-level maps
        self.max_stride = int(tv.transform.size_divisible)
        self.strides = (self.max_stride,)

    def _learned_parts(self) -> list[nn.Module]:
        if isinstance(self.head, nn.ModuleDict):
            roi = self.head["roi_heads"]
            return [self.neck, self.head["rpn"].head, roi.box_head, roi.box_predictor]
        return [self.neck, self.head]

    def train(self, mode: bool = True) -> TorchvisionDetector:
        super().train(mode)
        self.tv_model.train(mode)  # its own flag picks losses or detections
        return self

    def targets_from_batch(self, targets: Tensor, batch_size: int) -> list[dict[str, Tensor]]:
        """detforge targets (M, 6) ``[image, class, x1, y1, x2, y2]`` input pixels -> one
        ``{"boxes": (n, 4) float, "labels": (n,) int64}`` per image (labels + label_offset).

        Boxes without area are left out: torchvision refuses them, and they carry no signal
        (augmentation already drops boxes under ``augment.min_side``)."""
        out = []
        keep = (targets[:, 4] > targets[:, 2]) & (targets[:, 5] > targets[:, 3])
        targets = targets[keep]
        for b in range(batch_size):
            t = targets[targets[:, 0] == b]
            out.append(
                {
                    "boxes": t[:, 2:6].float(),
                    "labels": t[:, 1].round().long() + self.label_offset,
                }
            )
        return out

    def forward(self, x: Tensor, targets: list[dict[str, Tensor]] | None = None):
        """x: (B, 3, H, W) float in [0, 1]. Training (with targets): torchvision's loss dict.
        Inference: ``[boxes (B, D, 4), scores (B, D, K)]`` (see the module doc)."""
        images = list(self.normalize(x))
        if self.training:
            return self.tv_model(images, targets)
        return self.pack(self.tv_model(images), x.shape[0])

    def pack(self, dets: list[dict[str, Tensor]], batch_size: int) -> list[Tensor]:
        """torchvision's per-image detections -> padded boxes (B, D, 4) and one-hot-by-class
        scores (B, D, K), labels mapped back to detforge's classes."""
        d = max((len(o["scores"]) for o in dets), default=0)
        ref = dets[0]["boxes"] if dets else torch.zeros(0, 4)
        boxes = ref.new_zeros(batch_size, d, 4)
        scores = ref.new_zeros(batch_size, d, self.nc)
        for b, o in enumerate(dets):
            n = len(o["scores"])
            cls = o["labels"] - self.label_offset
            boxes[b, :n] = o["boxes"]
            scores[b, torch.arange(n, device=ref.device), cls] = o["scores"].to(scores.dtype)
        return [boxes, scores]

    def decode(self, outputs: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Inference outputs are already boxes (B, D, 4) and scores (B, D, K)."""
        return outputs[0], outputs[1]


def _to_fp32(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, dict):
        return type(value)((k, _to_fp32(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return type(value)(_to_fp32(v) for v in value)
    return value


def _outputs_to_fp32(module: nn.Module, args: Any, output: Any) -> Any:
    return _to_fp32(output)


def build_tv_detector(
    name: str,
    num_classes: int,
    imgsz: int,
    backbone_weights: str | None = None,
    load_weights: bool = True,
    weights: str | None = None,
) -> TorchvisionDetector:
    """``model.name`` of this family -> a detector for ``num_classes`` classes whose internal
    resize is ``imgsz``. ``backbone_weights="imagenet"``: torchvision's ImageNet backbone;
    ``weights="coco"``: torchvision's COCO-trained detector with new class layers; both from
    torchvision's cache (fetched once when missing, else a clear error naming the file). None
    (the default) downloads nothing. ``load_weights=False`` (a resumed run, whose weights come
    from its checkpoint) builds the same modules without reading the file."""
    if backbone_weights not in (None, "imagenet"):
        raise ValueError(
            f"model.backbone_weights: {name} takes 'imagenet' (torchvision's backbone weights) "
            f"or null, not {backbone_weights!r}"
        )
    if weights not in (None, "coco"):
        raise ValueError(f"model.weights: build_tv_detector takes 'coco' or None, not {weights!r}")
    if weights and backbone_weights:
        raise ValueError("model.weights=coco holds the backbone too: leave backbone_weights null")
    pretrained = weights or backbone_weights
    spec = TVDetectorSpec(name, imgsz, frozen_bn=pretrained is not None)
    return TorchvisionDetector(spec, num_classes, pretrained if load_weights else None)
