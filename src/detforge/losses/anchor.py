"""Loss of the anchor-based head: ``coord`` (1 - IoU), ``conf`` (objectness), ``class``.

Per level, the matcher (:mod:`detforge.assign.anchor_match`) picks (image, anchor, cell)
positives. ``coord`` is the mean of 1 - IoU (``loss.iou``, CIoU by default) between the decoded
prediction and the object over the positives; ``class`` the mean BCE (or focal, with label
smoothing and class weights: :class:`~detforge.losses.classification.ClassificationLoss`) over
the positives' class logits; ``conf`` the mean BCE (or focal) of every anchor's objectness
against a target equal to the IoU of its prediction with its object (0 where no object; the
largest IoU where several objects share a cell and anchor), weighted per level by
``loss.balance``. Terms are summed over levels and multiplied by their gains.

Scale, as in YOLOv5 so that its gains mean the same here: the terms are means over the batch's
positives (coord, class) or over all anchors of the batch (conf); the trainer back-propagates
them times the number of images. For the trainer's ``compute`` contract (sums that add up over
micro-batches, divided by the window's mass) the mass is the number of images: the conf term is
then exact under gradient accumulation, while coord and class are means over each micro-batch's
own positives, as YOLOv5 computes them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..assign.anchor_match import AnchorMatcher
from ..boxes import aligned_iou, xywh_to_xyxy
from ..config.fields import ConfigError
from ..models.anchor_head import split_anchor_outputs
from .classification import ClassificationLoss, focal_bce_with_logits, resolve_class_weights

if TYPE_CHECKING:
    import numpy as np

    from ..config.schema import RunConfig

__all__ = ["AnchorLoss", "default_balance", "build_anchor_loss_from_config"]

log = logging.getLogger("detforge")


def default_balance(levels: int) -> list[float]:
    """Objectness weights per level, finest first: fine levels hold most anchors but most of
    them are background, so their mean objectness loss is small and is weighted up."""
    return [4.0, 1.0, 0.4] if levels == 3 else [4.0, 1.0, 0.25, 0.06][:levels]


class AnchorLoss(nn.Module):
    """``{"coord", "conf", "class"}`` of an anchor head, already multiplied by their gains.

    anchors: (L, A, 2) pixels (the model's); gains are applied as given (the config builder
    scales them, see :func:`build_anchor_loss_from_config`); balance: L objectness weights.
    """

    def __init__(
        self,
        num_classes: int,
        strides: tuple[int, ...],
        anchors: Tensor,
        coord_gain: float = 0.05,
        conf_gain: float = 1.0,
        class_gain: float = 0.5,
        balance: Sequence[float] | None = None,
        iou_kind: str = "ciou",
        matcher: nn.Module | None = None,
        *,
        cls_loss: str = "bce",
        focal_gamma: float = 2.0,
        focal_alpha: float | None = 0.25,
        label_smoothing: float = 0.0,
        cls_weights: Sequence[float] | Tensor | None = None,
    ):
        super().__init__()
        self.nc, self.strides = num_classes, strides
        self.register_buffer("anchors", anchors.detach().float().clone(), persistent=False)
        self.gains = {"coord": coord_gain, "conf": conf_gain, "class": class_gain}
        self.balance = list(balance) if balance is not None else default_balance(len(strides))
        if len(self.balance) != len(strides):
            raise ConfigError(
                f"loss.balance: {len(self.balance)} weights for {len(strides)} levels; give one "
                "per level, finest first"
            )
        self.iou_kind = iou_kind
        self.matcher = matcher or AnchorMatcher()
        self.cls_term = ClassificationLoss(
            num_classes, cls_loss, focal_gamma, focal_alpha, label_smoothing, cls_weights
        )

    def objectness(self, logits: Tensor, target: Tensor) -> Tensor:
        """Elementwise objectness loss (BCE, or focal with ``loss.cls_loss=focal``)."""
        c = self.cls_term
        if c.kind == "focal":
            return focal_bce_with_logits(logits, target, c.gamma, c.alpha)
        return F.binary_cross_entropy_with_logits(logits, target, reduction="none")

    def forward(self, outputs: list[Tensor], targets: Tensor) -> dict[str, Tensor]:
        """outputs: raw maps (B, A * (5 + K), H, W) per level; targets: (T, 6) ``[batch_index,
        cls, x1, y1, x2, y2]`` pixels. Returns the weighted terms per image."""
        sums, mass = self.compute(outputs, targets)
        return {k: v / mass.clamp(min=1.0) for k, v in sums.items()}

    def compute(self, outputs: list[Tensor], targets: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """Weighted terms summed over the batch's images, and the mass (number of images)."""
        b = outputs[0].shape[0]
        dev = outputs[0].device
        anchors = self.anchors.to(dev)
        na = anchors.shape[1]
        grids = [(int(o.shape[-2]), int(o.shape[-1])) for o in outputs]
        matches = self.matcher(targets.to(dev), anchors, self.strides, grids)
        zero = outputs[0].new_zeros(())
        coord, conf, cls = zero, zero, zero
        for lv, (out, m) in enumerate(zip(outputs, matches, strict=True)):
            p = split_anchor_outputs(out.float(), na)  # (B, A, H, W, 5 + K)
            tobj = torch.zeros(p.shape[:4], device=dev)
            n = len(m.batch)
            if n:
                ps = p[m.batch, m.anchor, m.gy, m.gx]  # (P, 5 + K)
                pxy = ps[:, :2].sigmoid() * 2 - 0.5
                pwh = (ps[:, 2:4].sigmoid() * 2) ** 2 * m.anchor_wh
                iou = aligned_iou(
                    xywh_to_xyxy(torch.cat([pxy, pwh], 1)), xywh_to_xyxy(m.boxes), self.iou_kind
                )
                coord = coord + (1.0 - iou).mean()
                h, w = grids[lv]
                flat = ((m.batch * na + m.anchor) * h + m.gy) * w + m.gx
                target_iou = iou.detach().clamp(min=0).to(tobj.dtype)
                tobj.view(-1).scatter_reduce_(0, flat, target_iou, "amax")
                onehot = torch.zeros(n, self.nc, device=dev)
                onehot[torch.arange(n, device=dev), m.classes] = 1.0
                fg = torch.ones(n, dtype=torch.bool, device=dev)
                cls = cls + self.cls_term(ps[:, 5:], onehot, fg) / (n * self.nc)
            else:
                # keep the graph connected so DDP and AMP see every parameter used
                coord = coord + p[..., :4].sum() * 0.0
                cls = cls + p[..., 5:].sum() * 0.0
            per_image = self.objectness(p[..., 4], tobj).sum() / tobj[0].numel()
            conf = conf + self.balance[lv] * per_image
        sums = {
            "coord": coord * b * self.gains["coord"],
            "conf": conf * self.gains["conf"],
            "class": cls * b * self.gains["class"],
        }
        return sums, torch.tensor(float(b), device=dev)


def build_anchor_loss_from_config(
    cfg: RunConfig,
    num_classes: int,
    strides: tuple[int, ...],
    anchors: Tensor,
    train_labels: Sequence[np.ndarray] | None = None,
) -> AnchorLoss:
    """``loss`` and ``assign`` sections -> :class:`AnchorLoss`, gains scaled as YOLOv5 scales
    its hyper-parameters, so its published and tuned values carry over: coord x 3/L, class x
    K/80 x 3/L, conf x (imgsz/640)^2 x 3/L, for L levels and K classes at ``train.imgsz``."""
    c, a = cfg.loss, cfg.assign
    per_level = 3.0 / len(strides)
    gains = {
        "coord_gain": c.coord * per_level,
        "conf_gain": c.conf * (cfg.train.imgsz / 640) ** 2 * per_level,
        "class_gain": c.cls * num_classes / 80 * per_level,
    }
    log.info(
        "anchor loss: gains coord %.4g, conf %.4g, class %.4g (scaled); matching %s",
        gains["coord_gain"], gains["conf_gain"], gains["class_gain"], a.anchor,
    )  # fmt: skip
    return AnchorLoss(
        num_classes, strides, anchors, **gains, balance=c.balance, iou_kind=c.iou,
        matcher=AnchorMatcher(a.anchor, a.anchor_t, a.anchor_iou),
        cls_loss=c.cls_loss, focal_gamma=c.focal_gamma, focal_alpha=c.focal_alpha,
        label_smoothing=c.label_smoothing,
        cls_weights=resolve_class_weights(c.cls_weights, num_classes, train_labels),
    )  # fmt: skip
