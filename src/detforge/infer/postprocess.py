"""Detections from decoded outputs: threshold, class-aware NMS, cap, map to the original image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import Tensor
from torchvision.ops import batched_nms

__all__ = [
    "Detections",
    "postprocess",
    "kept_candidates",
    "scale_boxes_to_original",
    "yolo_txt_lines",
]


@dataclass
class Detections:
    """One image's detections. boxes: (D, 4) xyxy; scores: (D,); classes: (D,) long."""

    boxes: Tensor
    scores: Tensor
    classes: Tensor

    def __len__(self) -> int:
        return int(self.scores.numel())

    def to(self, device) -> Detections:
        return Detections(self.boxes.to(device), self.scores.to(device), self.classes.to(device))


def postprocess(
    boxes: Tensor,
    scores: Tensor,
    conf: float = 0.001,
    iou: float = 0.7,
    max_det: int = 300,
    max_candidates: int = 30000,
) -> list[Detections]:
    """Per-image detections from decoded predictions.

    boxes: (B, N, 4) xyxy pixels; scores: (B, N, K) class probabilities. Every (anchor, class)
    pair above ``conf`` is a candidate (an anchor may yield several classes), the best
    ``max_candidates`` go through NMS per class, and the best ``max_det`` survive.
    """
    out = []
    for b in range(boxes.shape[0]):
        idx, cls, s = kept_candidates(boxes[b], scores[b], conf, iou, max_det, max_candidates)
        out.append(Detections(boxes[b, idx].float(), s, cls))
    return out


def kept_candidates(
    boxes: Tensor,
    scores: Tensor,
    conf: float = 0.001,
    iou: float = 0.7,
    max_det: int = 300,
    max_candidates: int = 30000,
) -> tuple[Tensor, Tensor, Tensor]:
    """The (anchor, class) pairs of one image that survive :func:`postprocess`, best first.

    boxes: (N, 4) xyxy pixels; scores: (N, K). Returns anchor indices (D,), classes (D,) and
    scores (D,) float32; attention maps use the anchor index to target the score behind a box.
    """
    idx, cls = (scores > conf).nonzero(as_tuple=True)
    s = scores[idx, cls]
    if s.numel() > max_candidates:
        top = s.topk(max_candidates).indices
        idx, cls, s = idx[top], cls[top], s[top]
    keep = batched_nms(boxes[idx].float(), s.float(), cls, iou)[:max_det]
    return idx[keep], cls[keep], s[keep].float()


def scale_boxes_to_original(
    boxes: Tensor, ratio: float, pad: tuple[float, float], orig_shape: tuple[int, int]
) -> Tensor:
    """Letterboxed xyxy pixels -> original-image pixels, clipped to the image.

    ratio: the letterbox scale; pad: (left, top) padding; orig_shape: (h0, w0).
    """
    left, top = pad
    out = (boxes - boxes.new_tensor([left, top, left, top])) / ratio
    h0, w0 = orig_shape
    out[:, 0::2] = out[:, 0::2].clamp(0, w0)
    out[:, 1::2] = out[:, 1::2].clamp(0, h0)
    return out


def yolo_txt_lines(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, shape: tuple[int, int]
) -> list[str]:
    """One ``class cx cy w h conf`` line per detection, normalised by the image ``shape``
    (h, w): the label files of ``predict``. boxes: (D, 4) xyxy pixels."""
    h, w = shape
    return [
        f"{int(c)} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} "
        f"{(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f} {s:.5f}"
        for (x1, y1, x2, y2), s, c in zip(boxes, scores, classes, strict=True)
    ]
