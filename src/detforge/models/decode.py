"""Turn raw head maps into boxes and class scores (no thresholds, no NMS)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "make_anchors", "flatten_outputs", "dfl_expectation", "distance_to_box", "decode",
    "decode_model_outputs",
]  # fmt: skip


def make_anchors(
    outputs: list[Tensor], strides: tuple[int, ...], offset: float = 0.5
) -> tuple[Tensor, Tensor]:
    """Cell-centre points of every level, in grid units of their own stride.

    Returns points (N, 2) as (x, y) and strides (N, 1), N = sum of H_l * W_l, levels in order.
    """
    points, stride_col = [], []
    for out, s in zip(outputs, strides, strict=True):
        h, w = out.shape[-2:]
        dev, dt = out.device, torch.float32
        ys = torch.arange(h, device=dev, dtype=dt) + offset
        xs = torch.arange(w, device=dev, dtype=dt) + offset
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack([gx, gy], -1).reshape(-1, 2))
        stride_col.append(torch.full((h * w, 1), float(s), device=dev, dtype=dt))
    return torch.cat(points), torch.cat(stride_col)


def flatten_outputs(outputs: list[Tensor], reg_max: int) -> tuple[Tensor, Tensor]:
    """Per-level maps (B, 4R+K, H, W) -> box logits (B, N, 4R) and class logits (B, N, K)."""
    flat = torch.cat([o.flatten(2) for o in outputs], dim=2).transpose(1, 2)
    return flat[..., : 4 * reg_max], flat[..., 4 * reg_max :]


def dfl_expectation(box_logits: Tensor, reg_max: int) -> Tensor:
    """(B, N, 4R) logits -> (B, N, 4) expected distances (l, t, r, b) in stride units."""
    b, n, _ = box_logits.shape
    prob = box_logits.reshape(b, n * 4, reg_max).float().softmax(-1)
    # one (B, 4N, R) x (R, 1) product: exported with a vector on the right, onnxruntime ran
    # the MatMul as 4N tiny ones (8.6% of a 320 px yolo-n forward, one thread)
    bins = torch.arange(reg_max, device=box_logits.device, dtype=prob.dtype).reshape(reg_max, 1)
    return (prob @ bins).reshape(b, n, 4)


def distance_to_box(points: Tensor, dist: Tensor) -> Tensor:
    """points (N, 2) and distances (..., N, 4) l,t,r,b -> boxes (..., N, 4) xyxy, same units."""
    return torch.cat([points - dist[..., :2], points + dist[..., 2:]], dim=-1)


def _anchor_major(outputs: list[Tensor]) -> Tensor:
    """Per-level maps (B, C, H, W) -> (B, N, C) contiguous, levels in order.

    :func:`flatten_outputs` leaves a transposed view, whose (B, N, 4, R) reshape in
    :func:`dfl_expectation` then gathers across channels: at 640 px that copy took 5.7 ms of a
    6 ms decode. Channels-last maps (inference) already lie anchor-major, so here each level is
    a view and one ``cat`` writes the result; the values are the same, only their order in
    memory differs. The loss keeps :func:`flatten_outputs` (its sums stay as they were).
    """
    return torch.cat([o.permute(0, 2, 3, 1).flatten(1, 2) for o in outputs], 1)


def decode(outputs: list[Tensor], strides: tuple[int, ...], reg_max: int) -> tuple[Tensor, Tensor]:
    """Raw maps -> boxes (B, N, 4) xyxy in input pixels and class probabilities (B, N, K)."""
    points, stride_col = make_anchors(outputs, strides)
    flat = _anchor_major(outputs)
    boxes = distance_to_box(points, dfl_expectation(flat[..., : 4 * reg_max], reg_max))
    # the logits in flatten_outputs' layout (B, C, N): how the vectorised sigmoid splits its
    # runs between full vectors and a tail depends on it, and with it the scores' last bit
    b, n, c = flat.shape
    cls_logits = flat.new_empty((b, c, n))[:, 4 * reg_max :].transpose(1, 2)
    cls_logits.copy_(flat[..., 4 * reg_max :])  # only the K class rows of it are written
    return boxes * stride_col, cls_logits.float().sigmoid()


def decode_model_outputs(model, outputs: list[Tensor]) -> tuple[Tensor, Tensor]:
    """A model's raw maps -> boxes (B, N, 4) xyxy input pixels and scores (B, N, K): its own
    ``decode`` when it has one (every detforge detector: the anchor head decodes differently),
    else the anchor-free decoding with its ``strides`` and ``reg_max``."""
    own = getattr(model, "decode", None)
    if callable(own):
        return own(outputs)
    return decode(outputs, model.strides, model.reg_max)
