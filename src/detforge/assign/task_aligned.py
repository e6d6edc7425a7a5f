"""Task-aligned assignment (Feng et al., TOOD, ICCV 2021).

Each ground-truth box picks the ``topk`` anchor points inside it that maximise
``t = score ** alpha * iou ** beta``, where ``score`` is the predicted probability of the object's
class and ``iou`` the overlap of the predicted box with the object. An anchor claimed by several
objects keeps the one it overlaps most. Soft class targets are ``t`` normalised per object so that
its best anchor gets the object's best IoU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..boxes import aligned_iou

__all__ = ["TaskAlignedAssigner", "Assignment"]


@dataclass
class Assignment:
    """Per-anchor targets. B images, N anchors, K classes.

    labels: (B, N) long, class of the assigned object (0 where background).
    boxes: (B, N, 4) xyxy pixels of the assigned object (0 where background).
    scores: (B, N, K) soft class targets, zero rows for background.
    fg_mask: (B, N) bool, anchors with an object.
    gt_index: (B, N) long, index of the assigned object within its image.
    """

    labels: Tensor
    boxes: Tensor
    scores: Tensor
    fg_mask: Tensor
    gt_index: Tensor


class TaskAlignedAssigner(nn.Module):
    def __init__(
        self,
        num_classes: int,
        topk: int = 10,
        alpha: float = 0.5,
        beta: float = 6.0,
        iou_kind: str = "ciou",
        eps: float = 1e-9,
    ):
        super().__init__()
        self.nc, self.topk, self.alpha, self.beta = num_classes, topk, alpha, beta
        self.iou_kind, self.eps = iou_kind, eps

    @torch.no_grad()
    def forward(
        self,
        pred_scores: Tensor,
        pred_boxes: Tensor,
        anchor_points: Tensor,
        gt_labels: Tensor,
        gt_boxes: Tensor,
        gt_mask: Tensor,
    ) -> Assignment:
        """Assign objects to anchors.

        pred_scores: (B, N, K) probabilities; pred_boxes: (B, N, 4) xyxy pixels;
        anchor_points: (N, 2) xy pixels; gt_labels: (B, M) long; gt_boxes: (B, M, 4) xyxy pixels;
        gt_mask: (B, M) bool, False for padding rows.
        """
        b, n, k = pred_scores.shape
        m = gt_boxes.shape[1]
        dev = pred_scores.device
        if m == 0 or not bool(gt_mask.any()):
            return Assignment(
                labels=torch.zeros(b, n, dtype=torch.long, device=dev),
                boxes=torch.zeros(b, n, 4, device=dev),
                scores=torch.zeros(b, n, k, device=dev),
                fg_mask=torch.zeros(b, n, dtype=torch.bool, device=dev),
                gt_index=torch.zeros(b, n, dtype=torch.long, device=dev),
            )
        pred_scores, pred_boxes, gt_boxes = (
            pred_scores.float(),
            pred_boxes.float(),
            gt_boxes.float(),
        )

        # candidates: anchor centres strictly inside a real object's box -> (B, M, N)
        lt = anchor_points[None, None] - gt_boxes[:, :, None, :2]
        rb = gt_boxes[:, :, None, 2:] - anchor_points[None, None]
        inside = torch.cat([lt, rb], -1).amin(-1) > self.eps
        candidate = inside & gt_mask[:, :, None]

        # alignment metric, computed only on candidate pairs to keep memory at O(pairs)
        bi, mi, ni = candidate.nonzero(as_tuple=True)
        ious = torch.zeros(b, m, n, device=dev)
        align = torch.zeros(b, m, n, device=dev)
        pair_iou = aligned_iou(pred_boxes[bi, ni], gt_boxes[bi, mi], self.iou_kind).clamp(min=0)
        pair_score = pred_scores[bi, ni, gt_labels[bi, mi]]
        ious[bi, mi, ni] = pair_iou
        align[bi, mi, ni] = pair_score.pow(self.alpha) * pair_iou.pow(self.beta)

        # top-k candidates per object
        kk = min(self.topk, n)
        top_idx = align.topk(kk, dim=-1).indices  # (B, M, kk)
        in_topk = torch.zeros_like(candidate).scatter_(-1, top_idx, True)
        pos = in_topk & candidate  # (B, M, N)

        # an anchor claimed by several objects keeps the one with the highest IoU
        multi = pos.sum(1, keepdim=True) > 1  # (B, 1, N)
        if bool(multi.any()):
            best = (ious * pos).argmax(1, keepdim=True)  # (B, 1, N)
            best_onehot = torch.zeros_like(pos).scatter_(1, best, True)
            pos = torch.where(multi, best_onehot & pos.any(1, keepdim=True), pos)

        fg_mask = pos.any(1)  # (B, N)
        gt_index = pos.float().argmax(1)  # (B, N)
        batch_idx = torch.arange(b, device=dev)[:, None]
        labels = gt_labels[batch_idx, gt_index].clamp(min=0) * fg_mask
        boxes = gt_boxes[batch_idx, gt_index] * fg_mask[..., None]

        # soft targets: alignment normalised so each object's best anchor gets its best IoU
        align = align * pos
        align_max = align.amax(-1, keepdim=True)  # (B, M, 1)
        iou_max = (ious * pos).amax(-1, keepdim=True)
        norm = (align * iou_max / (align_max + self.eps)).amax(1)  # (B, N)
        scores = torch.zeros(b, n, k, device=dev)
        scores.scatter_(-1, labels[..., None], norm[..., None])
        scores = scores * fg_mask[..., None]
        return Assignment(labels, boxes, scores, fg_mask, gt_index)
