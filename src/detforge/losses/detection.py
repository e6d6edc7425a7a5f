"""Detection loss: task-aligned assignment, then box (IoU), DFL and classification terms.

Each term is normalised by the sum of soft class targets in the batch (a guarded denominator:
at least 1), so an image without objects contributes only classification (background) loss.
The trainer back-propagates ``total_loss(terms, batch_size)``, the per-image mean times the number
of images: gradients sum over images, which keeps the learning rate meaningful across batch sizes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..assign.task_aligned import TaskAlignedAssigner
from ..boxes import aligned_iou
from ..models.decode import distance_to_box, flatten_outputs, make_anchors
from .classification import ClassificationLoss, resolve_class_weights

if TYPE_CHECKING:
    import numpy as np

    from ..config.schema import LossSection

__all__ = [
    "DetectionLoss",
    "total_loss",
    "pad_targets",
    "dfl_loss",
    "build_loss_from_config",
    "loss_kwargs_from_config",
]

log = logging.getLogger("detforge")


def pad_targets(targets: Tensor, batch_size: int) -> tuple[Tensor, Tensor, Tensor]:
    """(T, 6) [batch_index, cls, x1, y1, x2, y2] -> labels (B, M), boxes (B, M, 4), mask (B, M)."""
    dev = targets.device
    if targets.numel() == 0:
        z = torch.zeros(batch_size, 0, device=dev)
        return z.long(), z.new_zeros(batch_size, 0, 4), z.bool()
    bi = targets[:, 0].long()
    counts = torch.bincount(bi, minlength=batch_size)
    m = int(counts.max())
    order = torch.argsort(bi, stable=True)
    bi = bi[order]
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(len(bi), device=dev) - starts[bi]
    labels = torch.zeros(batch_size, m, dtype=torch.long, device=dev)
    boxes = torch.zeros(batch_size, m, 4, device=dev)
    mask = torch.zeros(batch_size, m, dtype=torch.bool, device=dev)
    labels[bi, slot] = targets[order, 1].long()
    boxes[bi, slot] = targets[order, 2:6].float()
    mask[bi, slot] = True
    return labels, boxes, mask


def dfl_loss(logits: Tensor, target: Tensor, reg_max: int) -> Tensor:
    """Distribution focal loss (Li et al., GFL, NeurIPS 2020).

    logits: (P, 4, reg_max); target: (P, 4) distances in bins, in [0, reg_max - 1).
    The target's two neighbouring bins are trained with weights by linear interpolation.
    Returns (P,) the mean over the four sides.
    """
    left = target.long()
    right = left + 1
    w_left = right.float() - target
    w_right = 1 - w_left
    logp = F.log_softmax(logits.float(), dim=-1)
    loss = -(
        logp.gather(-1, left[..., None]).squeeze(-1) * w_left
        + logp.gather(-1, right.clamp(max=reg_max - 1)[..., None]).squeeze(-1) * w_right
    )
    return loss.mean(-1)


def total_loss(terms: dict[str, Tensor], batch_size: int) -> Tensor:
    """What the trainer back-propagates: the sum of weighted terms times the images in the batch."""
    return sum(terms.values()) * batch_size


class DetectionLoss(nn.Module):
    """Computes ``{"box", "cls", "dfl"}`` (already multiplied by their gains) for a batch.

    ``iou_kind`` (ciou, giou, diou, iou) is the box-loss variant and the assigner's overlap.
    ``topk``, ``alpha``, ``beta`` configure the default :class:`TaskAlignedAssigner` (None: its
    defaults); they cannot be combined with an explicit ``assigner``. ``cls_loss`` (bce or
    focal), ``focal_gamma``, ``focal_alpha``, ``label_smoothing`` and ``cls_weights`` (K weights
    or None; resolve ``'auto'`` with :func:`resolve_class_weights`) shape the classification term,
    see :mod:`detforge.losses.classification`.
    """

    def __init__(
        self,
        num_classes: int,
        strides: tuple[int, ...],
        reg_max: int = 16,
        box_gain: float = 7.5,
        cls_gain: float = 0.5,
        dfl_gain: float = 1.5,
        iou_kind: str = "ciou",
        assigner: nn.Module | None = None,
        *,
        topk: int | None = None,
        alpha: float | None = None,
        beta: float | None = None,
        cls_loss: str = "bce",
        focal_gamma: float = 2.0,
        focal_alpha: float | None = 0.25,
        label_smoothing: float = 0.0,
        cls_weights: Sequence[float] | Tensor | None = None,
    ):
        super().__init__()
        self.nc, self.strides, self.reg_max = num_classes, strides, reg_max
        self.gains = {"box": box_gain, "cls": cls_gain, "dfl": dfl_gain}
        self.iou_kind = iou_kind
        assign_args = {
            k: v for k, v in {"topk": topk, "alpha": alpha, "beta": beta}.items() if v is not None
        }
        if assigner is not None and assign_args:
            raise ValueError(f"give either an assigner or {', '.join(assign_args)}, not both")
        self.assigner = assigner or TaskAlignedAssigner(
            num_classes, iou_kind=iou_kind, **assign_args
        )
        self.cls_term = ClassificationLoss(
            num_classes, cls_loss, focal_gamma, focal_alpha, label_smoothing, cls_weights
        )

    def classification(
        self, logits: Tensor, target_scores: Tensor, fg_mask: Tensor | None = None
    ) -> Tensor:
        """Summed classification loss. logits, target_scores: (B, N, K); fg_mask: (B, N)."""
        return self.cls_term(logits, target_scores, fg_mask)

    def forward(self, outputs: list[Tensor], targets: Tensor) -> dict[str, Tensor]:
        """outputs: raw head maps (B, 4R+K, H, W) per level; targets: (T, 6) as in pad_targets.

        Returns the weighted terms normalised by this batch's target mass (at least 1).
        """
        sums, mass = self.compute(outputs, targets)
        norm = mass.clamp(min=1.0)
        return {k: v / norm for k, v in sums.items()}

    def compute(self, outputs: list[Tensor], targets: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """Un-normalised weighted terms and the target mass (sum of soft class targets).

        Sums add up over images, so a loss normalised by the mass of a whole accumulation window
        (or of all processes) is exact: gradient accumulation divides the summed gradients by the
        window's mass instead of averaging per-batch ratios.
        """
        b = outputs[0].shape[0]
        points, stride_col = make_anchors(outputs, self.strides)
        box_logits, cls_logits = flatten_outputs(outputs, self.reg_max)
        box_logits, cls_logits = box_logits.float(), cls_logits.float()
        bins = torch.arange(self.reg_max, device=points.device, dtype=torch.float32)
        prob = box_logits.reshape(b, -1, 4, self.reg_max).softmax(-1)
        pred_dist = prob @ bins  # (B, N, 4) in stride units
        pred_boxes = distance_to_box(points, pred_dist)  # grid units

        gt_labels, gt_boxes, gt_mask = pad_targets(targets.to(points.device), b)
        assigned = self.assigner(
            cls_logits.detach().sigmoid(),
            (pred_boxes.detach() * stride_col),
            points * stride_col,
            gt_labels,
            gt_boxes,
            gt_mask,
        )
        # normalised by the unsmoothed scores: smoothing changes the targets, not the scale
        mass = assigned.scores.sum()
        cls = self.classification(cls_logits, assigned.scores, assigned.fg_mask)

        fg = assigned.fg_mask
        if bool(fg.any()):
            weight = assigned.scores.sum(-1)[fg]  # (P,)
            target_boxes = assigned.boxes / stride_col  # grid units
            iou = aligned_iou(pred_boxes[fg], target_boxes[fg], self.iou_kind)
            box = ((1.0 - iou) * weight).sum()
            pts = points[None].expand(b, -1, -1)[fg]
            tb = target_boxes[fg]
            target_dist = torch.cat([pts - tb[:, :2], tb[:, 2:] - pts], -1)
            target_dist = target_dist.clamp(0, self.reg_max - 1 - 0.01)
            logits_fg = box_logits.reshape(b, -1, 4, self.reg_max)[fg]
            dfl = (dfl_loss(logits_fg, target_dist, self.reg_max) * weight).sum()
        else:
            # keep the graph connected so DDP and AMP see every parameter used
            box = dfl = box_logits.sum() * 0.0
        sums = {
            "box": box * self.gains["box"],
            "cls": cls * self.gains["cls"],
            "dfl": dfl * self.gains["dfl"],
        }
        return sums, mass.detach()


def build_loss_from_config(
    loss_section: LossSection,
    num_classes: int,
    strides: tuple[int, ...],
    reg_max: int,
    train_labels: Sequence[np.ndarray] | None = None,
    names: Sequence[str] | None = None,
) -> DetectionLoss:
    """The ``loss`` section -> :class:`DetectionLoss` for a model's ``strides`` and ``reg_max``;
    resolved class weights are logged with the class ``names``."""
    loss = DetectionLoss(
        num_classes, strides, reg_max,
        **loss_kwargs_from_config(loss_section, num_classes, train_labels),
    )  # fmt: skip
    weights = loss.cls_term.class_weights
    if weights is not None:
        labels = names or [str(i) for i in range(num_classes)]
        pairs = zip(labels, weights.tolist(), strict=True)
        log.info("class weights: %s", ", ".join(f"{n} {w:.3g}" for n, w in pairs))
    return loss


def loss_kwargs_from_config(
    loss_section: LossSection,
    num_classes: int,
    train_labels: Sequence[np.ndarray] | None = None,
) -> dict:
    """Keyword arguments of :class:`DetectionLoss` (after ``num_classes, strides, reg_max``).

    ``train_labels`` (per image (n, 5), class in column 0) is read only for ``cls_weights: auto``.
    """
    c = loss_section
    return {
        "box_gain": c.box,
        "cls_gain": c.cls,
        "dfl_gain": c.dfl,
        "iou_kind": c.iou,
        "topk": c.topk,
        "alpha": c.alpha,
        "beta": c.beta,
        "cls_loss": c.cls_loss,
        "focal_gamma": c.focal_gamma,
        "focal_alpha": c.focal_alpha,
        "label_smoothing": c.label_smoothing,
        "cls_weights": resolve_class_weights(c.cls_weights, num_classes, train_labels),
    }
