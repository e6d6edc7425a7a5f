"""Box conversions and overlap measures: pure functions, no state; the one home of IoU.

Tensor functions first (losses, assigner), then numpy ones: the COCO evaluator's IoU, whose
arithmetic mirrors pycocotools' C code bit for bit (``pair_iou_ltwh``), the one-to-many IoU of
box fusion and the intersection-over-area of copy-paste. They are not folded into one another:
each keeps the exact operations its caller's results depend on.

Conventions used across detforge:
- ``xyxy``: (x1, y1, x2, y2) corners, pixels unless said otherwise.
- ``xywh``: (cx, cy, w, h) centre and size (the YOLO label layout when normalised).
- ``ltwh``: (left, top, w, h), the COCO json layout.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "xywh_to_xyxy",
    "xyxy_to_xywh",
    "xyxy_to_ltwh",
    "ltwh_to_xyxy",
    "box_area",
    "box_iou",
    "aligned_iou",
    "pair_iou_ltwh",
    "coco_iou_matrix",
    "iou_one_to_many",
    "box_ioa",
]


def xywh_to_xyxy(b: Tensor) -> Tensor:
    """(..., 4) centre/size -> (..., 4) corners."""
    cxcy, wh = b[..., :2], b[..., 2:4]
    return torch.cat([cxcy - wh / 2, cxcy + wh / 2], dim=-1)


def xyxy_to_xywh(b: Tensor) -> Tensor:
    """(..., 4) corners -> (..., 4) centre/size."""
    p1, p2 = b[..., :2], b[..., 2:4]
    return torch.cat([(p1 + p2) / 2, p2 - p1], dim=-1)


def xyxy_to_ltwh(b: Tensor) -> Tensor:
    """(..., 4) corners -> (..., 4) COCO left/top/width/height."""
    return torch.cat([b[..., :2], b[..., 2:4] - b[..., :2]], dim=-1)


def ltwh_to_xyxy(b: Tensor) -> Tensor:
    """(..., 4) COCO left/top/width/height -> (..., 4) corners."""
    return torch.cat([b[..., :2], b[..., :2] + b[..., 2:4]], dim=-1)


def box_area(b: Tensor) -> Tensor:
    """(..., 4) xyxy -> (...,) area, zero for inverted boxes."""
    return (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)


def box_iou(a: Tensor, b: Tensor, eps: float = 1e-9) -> Tensor:
    """Pairwise IoU. a: (N, 4) xyxy, b: (M, 4) xyxy -> (N, M)."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return inter / (union + eps)


def aligned_iou(pred: Tensor, target: Tensor, kind: str = "ciou", eps: float = 1e-7) -> Tensor:
    """IoU of matching rows, optionally with a GIoU/DIoU/CIoU penalty.

    pred, target: (..., 4) xyxy with the same shape -> (...,) in [-1, 1].
    ``kind`` is one of ``iou``, ``giou``, ``diou``, ``ciou`` (Zheng et al. 2020 for D/CIoU).
    """
    px1, py1, px2, py2 = pred.unbind(-1)
    tx1, ty1, tx2, ty2 = target.unbind(-1)
    pw, ph = (px2 - px1).clamp(min=0), (py2 - py1).clamp(min=0)
    tw, th = (tx2 - tx1).clamp(min=0), (ty2 - ty1).clamp(min=0)
    iw = (torch.minimum(px2, tx2) - torch.maximum(px1, tx1)).clamp(min=0)
    ih = (torch.minimum(py2, ty2) - torch.maximum(py1, ty1)).clamp(min=0)
    inter = iw * ih
    union = pw * ph + tw * th - inter + eps
    iou = inter / union
    if kind == "iou":
        return iou
    # smallest enclosing box
    cw = torch.maximum(px2, tx2) - torch.minimum(px1, tx1)
    ch = torch.maximum(py2, ty2) - torch.minimum(py1, ty1)
    if kind == "giou":
        c_area = cw * ch + eps
        return iou - (c_area - union) / c_area
    c2 = cw**2 + ch**2 + eps
    rho2 = ((px1 + px2 - tx1 - tx2) ** 2 + (py1 + py2 - ty1 - ty2) ** 2) / 4
    if kind == "diou":
        return iou - rho2 / c2
    if kind == "ciou":
        v = (4 / math.pi**2) * (torch.atan(tw / (th + eps)) - torch.atan(pw / (ph + eps))) ** 2
        with torch.no_grad():
            alpha = v / (v - iou + (1 + eps))
        return iou - (rho2 / c2 + v * alpha)
    raise ValueError(f"unknown IoU kind {kind!r}; expected one of iou, giou, diou, ciou")


def pair_iou_ltwh(det: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """IoU of aligned box pairs given as COCO ``[left, top, width, height]``.

    Mirrors the C routine pycocotools uses: right/bottom edges are ``left + width`` (not stored
    corners, which can differ by an ulp), areas are ``width * height``, the union is
    ``(det_area + gt_area) - inter`` and, for a crowd ground truth, just the detection's area.
    det, gt: (P, 4) float64; crowd: (P,) bool -> (P,) float64, 0 where the boxes do not overlap.
    """
    dx, dy, dw, dh = det.T
    gx, gy, gw, gh = gt.T
    iw = np.minimum(dx + dw, gx + gw) - np.maximum(dx, gx)
    ih = np.minimum(dy + dh, gy + gh) - np.maximum(dy, gy)
    overlap = (iw > 0) & (ih > 0)
    inter = iw * ih
    det_area = dw * dh
    # Same association as the C code: (da + ga) - inter.
    union = np.where(crowd, det_area, (det_area + gw * gh) - inter)
    out = np.zeros(det.shape[0], dtype=np.float64)
    np.divide(inter, union, out=out, where=overlap)
    return out


def xyxy_to_ltwh_np(xyxy: np.ndarray) -> np.ndarray:
    """(..., 4) xyxy -> (N, 4) ltwh (width = x2 - x1, as the COCO evaluator computes it)."""
    b = xyxy.reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def coco_iou_matrix(boxes: np.ndarray, gt_boxes: np.ndarray, gt_crowd: np.ndarray | None = None):
    """(N, 4), (M, 4) xyxy -> (N, M) IoU, computed exactly as the COCO evaluator does.

    A crowd ground truth's "IoU" is COCO's intersection over the detection's area.
    """
    n, m = len(boxes), len(gt_boxes)
    if n == 0 or m == 0:
        return np.zeros((n, m))
    crowd = np.zeros(m, bool) if gt_crowd is None else gt_crowd
    d, g = np.repeat(xyxy_to_ltwh_np(boxes), m, axis=0), np.tile(xyxy_to_ltwh_np(gt_boxes), (n, 1))
    return pair_iou_ltwh(d, g, np.tile(crowd, n)).reshape(n, m)


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box (4,) with many (M, 4) -> (M,)."""
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = iw * ih
    a = (box[2] - box[0]) * (box[3] - box[1])
    b = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(a + b - inter, 1e-12)


def box_ioa(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(k, 4) and (n, 4) xyxy -> (k, n) intersection area / area of ``b``."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_b, 1e-12)[None, :]
