"""YOLO detectors: a backbone (ours, CSP, or a torchvision / timm one from
:mod:`detforge.models.backbones` behind a ``normalize`` module), PAN neck, and a head chosen by
the spec: the anchor-free decoupled DFL head (``head="dfl"``) or the anchor-based head
(``head="anchor"``, :mod:`detforge.models.anchor_head`).

The model returns raw per-level maps; ``decode`` turns them into boxes and scores (the functions
live in :mod:`detforge.models.decode` and the anchor head's module) and the loss lives in
:mod:`detforge.losses`, so the model never knows about targets or thresholds.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .anchor_head import AnchorHead, decode_anchor_outputs
from .backbones import build_backbone, needed_strides
from .blocks import SPPF, ConvBNAct, CSPStage, DWConvBNAct
from .decode import decode
from .norm import Normalize

__all__ = ["ModelSpec", "Backbone", "PANNeck", "DetectHead", "YOLODetector"]


@dataclass(frozen=True)
class ModelSpec:
    """A fully resolved architecture (scaled channels, repeats and levels)."""

    stem: int
    channels: tuple[int, ...]  # P2..P5 backbone channels
    blocks: tuple[int, ...]  # CSP repeats per backbone stage
    neck_blocks: int
    sppf_kernel: int
    levels: tuple[int, ...]  # detection levels, e.g. (3, 4, 5)
    reg_max: int
    cls_branch: str
    name: str = "custom"
    head: str = "dfl"  # "dfl" (anchor-free) or "anchor"
    # anchor head: per level (w1, h1, w2, h2, ...) in input pixels; empty for the DFL head
    anchors: tuple[tuple[float, ...], ...] = ()
    # "csp" (``Backbone``), "resnet18|34|50" or "timm:<name>"; ``channels`` are then the neck's
    # widths, to which the backbone's maps are projected
    backbone: str = "csp"

    def anchor_tensor(self) -> Tensor:
        """The anchors as (levels, A, 2) float32."""
        return torch.tensor(self.anchors, dtype=torch.float32).view(len(self.anchors), -1, 2)


class Backbone(nn.Module):
    """Returns the feature maps of strides 4, 8, 16 and 32 (P2..P5)."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.stem = ConvBNAct(3, spec.stem, 3, 2)
        stages, c_prev = [], spec.stem
        for c, n in zip(spec.channels, spec.blocks, strict=True):
            stages.append(nn.Sequential(ConvBNAct(c_prev, c, 3, 2), CSPStage(c, c, n)))
            c_prev = c
        self.stages = nn.ModuleList(stages)
        self.sppf = SPPF(c_prev, c_prev, spec.sppf_kernel)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        feats[-1] = self.sppf(feats[-1])
        return feats


class PANNeck(nn.Module):
    """Top-down then bottom-up fusion (PANet), from P5 down to the lowest level and back up.

    Inputs are the maps of P2..P5, or of the lowest level up to P5 (a backbone from another
    library gives only those); outputs are the maps of ``levels`` (ascending stride). A P2-P4
    model still fuses P5 into the top-down path, it only drops the P5 output and its bottom-up
    stage. ``in_channels`` (lowest level .. P5), when given, are the backbone's widths: a 1x1
    conv per level (``proj``) maps them to ``channels`` (P2..P5), the neck's own widths.
    """

    def __init__(
        self,
        channels: tuple[int, ...],
        levels: tuple[int, ...],
        n: int,
        in_channels: tuple[int, ...] | None = None,
    ):
        super().__init__()
        self.levels = levels
        self.low = min(levels)
        self.high = max(levels)
        ch = dict(zip((2, 3, 4, 5), channels, strict=True))
        if in_channels is not None:
            inputs = range(self.low, 6)
            self.proj = nn.ModuleDict({
                str(k): ConvBNAct(c, ch[k], 1) for k, c in zip(inputs, in_channels, strict=True)
            })  # fmt: skip
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        # top-down: fuse level k+1 (already fused) into level k, for k = 4 .. low
        self.td = nn.ModuleDict()
        for k in range(4, self.low - 1, -1):
            self.td[str(k)] = CSPStage(ch[k + 1] + ch[k], ch[k], n, shortcut=False)
        td_ch = {k: ch[k] for k in range(self.low, 6)}
        # bottom-up: downsample level k and fuse with the top-down map of k+1, up to ``high``
        self.down = nn.ModuleDict()
        self.bu = nn.ModuleDict()
        for k in range(self.low, self.high):
            self.down[str(k)] = ConvBNAct(td_ch[k], td_ch[k], 3, 2)
            self.bu[str(k + 1)] = CSPStage(td_ch[k] + td_ch[k + 1], ch[k + 1], n, shortcut=False)
        self.out_channels = tuple(ch[k] for k in levels)

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        p = dict(zip(range(6 - len(feats), 6), feats, strict=True))
        if hasattr(self, "proj"):
            p = {k: self.proj[str(k)](x) for k, x in p.items()}
        td = {5: p[5]}
        for k in range(4, self.low - 1, -1):
            td[k] = self.td[str(k)](torch.cat([self.up(td[k + 1]), p[k]], 1))
        out = {self.low: td[self.low]}
        for k in range(self.low, self.high):
            out[k + 1] = self.bu[str(k + 1)](torch.cat([self.down[str(k)](out[k]), td[k + 1]], 1))
        return [out[k] for k in self.levels]


class DetectHead(nn.Module):
    """Decoupled head: a box branch (4 x reg_max DFL logits) and a class branch per level.

    Output per level: (B, 4*reg_max + num_classes, H, W), box logits first.
    """

    def __init__(
        self,
        in_channels: tuple[int, ...],
        strides: tuple[int, ...],
        num_classes: int,
        reg_max: int = 16,
        cls_branch: str = "dw",
    ):
        super().__init__()
        self.nc, self.reg_max, self.strides = num_classes, reg_max, strides
        c_box = max(16, in_channels[0] // 4, 4 * reg_max)
        c_cls = max(in_channels[0], min(num_classes, 100))
        if cls_branch not in ("dw", "full"):
            raise ValueError(f"head.cls_branch: {cls_branch!r} is not one of 'dw', 'full'")
        conv3 = DWConvBNAct if cls_branch == "dw" else (lambda a, b: ConvBNAct(a, b, 3))
        self.box = nn.ModuleList(
            nn.Sequential(
                ConvBNAct(c, c_box, 3), ConvBNAct(c_box, c_box, 3), nn.Conv2d(c_box, 4 * reg_max, 1)
            )
            for c in in_channels
        )
        self.cls = nn.ModuleList(
            nn.Sequential(conv3(c, c_cls), conv3(c_cls, c_cls), nn.Conv2d(c_cls, num_classes, 1))
            for c in in_channels
        )
        self.reset_bias()

    def reset_bias(self, imgsz: int = 640, objects_per_image: float = 5.0) -> None:
        """Start box logits flat and class probabilities near a sparse-object prior.

        The prior probability of a class at a location is objects_per_image / num_classes /
        locations-at-this-stride, so the initial classification loss is not dominated by
        confident false positives (Lin et al., focal loss paper, section 4.1).
        """
        for box, cls, s in zip(self.box, self.cls, self.strides, strict=True):
            nn.init.constant_(box[-1].bias, 1.0)
            p = objects_per_image / self.nc / (imgsz / s) ** 2
            nn.init.constant_(cls[-1].bias, math.log(p / (1 - p)))

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        return [
            torch.cat([box(x), cls(x)], 1)
            for x, box, cls in zip(feats, self.box, self.cls, strict=True)
        ]


class YOLODetector(nn.Module):
    """normalize -> backbone -> neck -> head. ``forward`` takes (B, 3, H, W) floats in [0, 1].

    ``normalize`` holds the input statistics of a torchvision / timm backbone as buffers (so the
    checkpoint, predict, val and export apply them); ours trains on [0, 1] and has none.
    """

    def __init__(
        self,
        spec: ModelSpec,
        num_classes: int,
        backbone: nn.Module | None = None,
        neck: nn.Module | None = None,
        head: nn.Module | None = None,
    ):
        super().__init__()
        self.spec, self.nc, self.reg_max = spec, num_classes, spec.reg_max
        self.strides = tuple(2**k for k in spec.levels)
        if backbone is None:
            backbone = (
                Backbone(spec)
                if spec.backbone == "csp"
                else build_backbone(spec.backbone, needed_strides(spec.levels))
            )
        self.backbone = backbone
        # ours: no module at all, so its state dict, graph and numbers are as before
        external = spec.backbone != "csp"
        self.normalize = Normalize(backbone.mean, backbone.std) if external else nn.Identity()
        in_channels = backbone.out_channels if external else None
        self.neck = (
            neck
            if neck is not None
            else PANNeck(spec.channels, spec.levels, spec.neck_blocks, in_channels)
        )
        if head is not None:
            self.head = head
        elif spec.head == "anchor":
            self.head = AnchorHead(
                self.neck.out_channels, self.strides, num_classes, spec.anchor_tensor()
            )
        else:
            self.head = DetectHead(
                self.neck.out_channels, self.strides, num_classes, spec.reg_max, spec.cls_branch
            )

    @property
    def max_stride(self) -> int:
        return max(32, max(self.strides))

    @property
    def anchors(self) -> Tensor | None:
        """(levels, A, 2) anchors in pixels for the anchor head, else None."""
        return self.head.anchors if self.spec.head == "anchor" else None

    def set_anchors(self, anchors: Tensor) -> None:
        """Replace the anchor head's anchors (levels, A, 2) pixels, in its buffer and the spec
        (both go into checkpoints; the spec rebuilds the model, the buffer is loaded into it)."""
        self.head.set_anchors(anchors)
        rows = tuple(tuple(float(v) for v in lv.flatten()) for lv in anchors.detach().cpu())
        self.spec = dataclasses.replace(self.spec, anchors=rows)

    def decode(self, outputs: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Raw maps -> boxes (B, N, 4) xyxy input pixels and class scores (B, N, K)."""
        if self.spec.head == "anchor":
            return decode_anchor_outputs(outputs, self.strides, self.head.anchors)
        return decode(outputs, self.strides, self.reg_max)

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.head(self.neck(self.backbone(self.normalize(x))))
