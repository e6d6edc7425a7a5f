"""Anchor-based detection head (YOLOv5-style): per anchor (x, y, w, h, objectness, classes).

Each level has A anchors (w, h) in input pixels, held in the ``anchors`` buffer (L, A, 2) so they
travel with the weights into checkpoints, the EMA and exports. Decoding per cell and anchor, in
grid units of the level: centre = cell + 2 sigmoid(t_xy) - 0.5 (the centre may lie up to half a
cell outside its cell, which is what lets the matcher also train the neighbouring cells), size =
anchor x (2 sigmoid(t_wh))^2 (at most 4x the anchor, the matcher's default ratio limit); the
score of a class is sigmoid(objectness) x sigmoid(class).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["AnchorHead", "decode_anchor_outputs", "split_anchor_outputs"]


class AnchorHead(nn.Module):
    """A 1x1 conv per level. Output per level: (B, A * (5 + K), H, W), anchor-major."""

    def __init__(
        self,
        in_channels: tuple[int, ...],
        strides: tuple[int, ...],
        num_classes: int,
        anchors: Tensor,
    ):
        super().__init__()
        if anchors.ndim != 3 or anchors.shape[0] != len(strides) or anchors.shape[2] != 2:
            raise ValueError(
                f"anchors: expected (levels={len(strides)}, A, 2), got {tuple(anchors.shape)}"
            )
        self.nc, self.strides, self.na = num_classes, strides, anchors.shape[1]
        self.register_buffer("anchors", anchors.float().clone())
        self.out = nn.ModuleList(nn.Conv2d(c, self.na * (5 + num_classes), 1) for c in in_channels)
        self.reset_bias()

    def reset_bias(self, imgsz: int = 640, objects_per_image: float = 5.0) -> None:
        """Objectness starts at the prior of an object per anchor and cell (few objects over
        every location, as in the anchor-free head), classes at a uniform prior 1 / (K + 1)."""
        for conv, s in zip(self.out, self.strides, strict=True):
            b = conv.bias.detach().view(self.na, 5 + self.nc)
            p_obj = objects_per_image / self.na / (imgsz / s) ** 2
            b[:, :4] = 0.0
            b[:, 4] = math.log(p_obj / (1 - p_obj))
            b[:, 5:] = -math.log(self.nc)  # logit of 1 / (K + 1)

    @torch.no_grad()
    def set_anchors(self, anchors: Tensor) -> None:
        """Replace the anchors (L, A, 2) in pixels (same shape), e.g. by ``anchors=auto``."""
        if anchors.shape != self.anchors.shape:
            raise ValueError(f"anchors: expected {tuple(self.anchors.shape)}, got {anchors.shape}")
        self.anchors.copy_(anchors)

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        return [conv(x) for x, conv in zip(feats, self.out, strict=True)]


def split_anchor_outputs(out: Tensor, num_anchors: int) -> Tensor:
    """(B, A * (5 + K), H, W) -> (B, A, H, W, 5 + K)."""
    b, c, h, w = out.shape
    return out.view(b, num_anchors, c // num_anchors, h, w).permute(0, 1, 3, 4, 2)


def decode_anchor_outputs(
    outputs: list[Tensor], strides: tuple[int, ...], anchors: Tensor
) -> tuple[Tensor, Tensor]:
    """Raw maps -> boxes (B, N, 4) xyxy in input pixels and class scores (B, N, K) (objectness
    times class probability), N = sum over levels of A * H * W."""
    all_boxes, all_scores = [], []
    na = anchors.shape[1]
    for out, s, anc in zip(outputs, strides, anchors, strict=True):
        p = split_anchor_outputs(out.float(), na).sigmoid()  # (B, A, H, W, 5 + K)
        b, _, h, w, _ = p.shape
        gy, gx = torch.meshgrid(
            torch.arange(h, device=out.device, dtype=p.dtype),
            torch.arange(w, device=out.device, dtype=p.dtype),
            indexing="ij",
        )
        grid = torch.stack([gx, gy], -1)  # (H, W, 2)
        xy = (p[..., :2] * 2 - 0.5 + grid) * s
        wh = (p[..., 2:4] * 2) ** 2 * anc.to(p.dtype).view(1, na, 1, 1, 2)
        all_boxes.append(torch.cat([xy - wh / 2, xy + wh / 2], -1).reshape(b, -1, 4))
        all_scores.append((p[..., 4:5] * p[..., 5:]).reshape(b, na * h * w, -1))
    return torch.cat(all_boxes, 1), torch.cat(all_scores, 1)
