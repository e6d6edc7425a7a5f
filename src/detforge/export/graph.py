"""The network as exported: decoding, and optionally class-aware NMS, inside the graph.

Without NMS the graph maps images to decoded predictions; detforge's own post-processing
(:func:`~detforge.infer.postprocess.postprocess`) then runs outside it, exactly as for PyTorch.
With NMS, the ONNX ``NonMaxSuppression`` op (which works per image and per class, so it is
class-aware by itself) runs on the decoded predictions, with the score threshold, IoU threshold
and the cap as graph inputs; the cap applies per class in the op and per image after it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.ops import batched_nms

from ..infer.runtime import DET_OUTPUTS, INPUT_NAME, NMS_INPUTS, RAW_OUTPUTS
from ..models.decode import decode_model_outputs

__all__ = ["ExportGraph", "input_names", "output_names"]


class _NonMaxSuppression(torch.autograd.Function):
    """ONNX ``NonMaxSuppression`` (boxes (B, N, 4) xyxy, scores (B, K, N)) -> selected
    (M, 3) int64 rows [image, class, box]. ``forward`` computes the same in PyTorch so the
    exporter can trace through it; ``symbolic`` emits the ONNX op."""

    @staticmethod
    def forward(ctx, boxes: Tensor, scores: Tensor, max_per_class: Tensor, iou: Tensor,
                conf: Tensor) -> Tensor:  # fmt: skip
        rows = []
        for b in range(boxes.shape[0]):
            cls, idx = (scores[b] > conf).nonzero(as_tuple=True)
            s = scores[b, cls, idx]
            keep = batched_nms(boxes[b, idx], s, cls, float(iou))
            cls, idx = cls[keep], idx[keep]
            # the op keeps at most max_per_class boxes per class, best first
            rank = torch.zeros_like(cls)
            for c in cls.unique():
                at = (cls == c).nonzero(as_tuple=True)[0]
                rank[at] = torch.arange(len(at))
            sel = rank < max_per_class
            rows.append(torch.stack([torch.full_like(cls[sel], b), cls[sel], idx[sel]], 1))
        return torch.cat(rows) if rows else boxes.new_zeros((0, 3), dtype=torch.long)

    @staticmethod
    def symbolic(g, boxes, scores, max_per_class, iou, conf):
        return g.op("NonMaxSuppression", boxes, scores, max_per_class, iou, conf,
                    center_point_box_i=0)  # fmt: skip


def input_names(nms: bool) -> list[str]:
    return [INPUT_NAME, *NMS_INPUTS] if nms else [INPUT_NAME]


def output_names(nms: bool) -> list[str]:
    return [*RAW_OUTPUTS, *DET_OUTPUTS] if nms else list(RAW_OUTPUTS)


class ExportGraph(nn.Module):
    """images (B, 3, H, W) float RGB in [0, 1] -> boxes (B, N, 4) xyxy input pixels and scores
    (B, N, K) class probabilities; with ``nms`` also the detections of every image:
    det_boxes (D, 4), det_scores (D,), det_classes (D,) int64 and det_image (D,) int64 (the
    image of each row), rows grouped by image, best score first within an image.

    With ``nms`` it takes three more inputs: conf (1,) float, iou (1,) float, max_det (1,) int64.
    """

    def __init__(self, model: nn.Module, nms: bool):
        super().__init__()
        self.model, self.nms = model, nms

    def forward(self, x: Tensor, conf: Tensor | None = None, iou: Tensor | None = None,
                max_det: Tensor | None = None) -> tuple[Tensor, ...]:  # fmt: skip
        boxes, scores = decode_model_outputs(self.model, self.model(x))
        if not self.nms:
            return boxes, scores
        sel = _NonMaxSuppression.apply(boxes, scores.transpose(1, 2).contiguous(), max_det, iou,
                                       conf)  # fmt: skip
        image, cls, idx = sel[:, 0], sel[:, 1], sel[:, 2]
        det_boxes, det_scores = boxes[image, idx], scores[image, idx, cls]
        # Cap each image at max_det: order rows by (image, score descending) with one sort key
        # (scores lie in [0, 1]; float64 keeps their order exact next to the image index), then
        # a row's rank in its image is its position minus the number of rows of earlier images.
        key = image.double() * 2.0 + (1.0 - det_scores.double())
        order = torch.argsort(key)
        image, cls, det_boxes, det_scores = (
            image[order],
            cls[order],
            det_boxes[order],
            det_scores[order],
        )
        per_image = (image[:, None] == torch.arange(x.shape[0], device=x.device)[None]).long()
        counts = per_image.sum(0)
        start = torch.cumsum(counts, 0) - counts
        rank = torch.arange(image.shape[0], device=x.device) - start[image]
        keep = rank < max_det
        return boxes, scores, det_boxes[keep], det_scores[keep], cls[keep], image[keep]
