"""Box conversions and overlap measures: pure tensor functions, no state.

Conventions used across detforge:
- ``xyxy``: (x1, y1, x2, y2) corners, pixels unless said otherwise.
- ``xywh``: (cx, cy, w, h) centre and size (the YOLO label layout when normalised).
- ``ltwh``: (left, top, w, h), the COCO json layout.
"""

from __future__ import annotations

import math

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
