"""Matching objects to the anchors of an anchor-based head (no-grad).

Two rules, ``assign.anchor``:

``ratio``
    On every level, an object matches each anchor whose width and height both lie within a factor
    ``anchor_t`` of its own. Each match is placed in the cell holding the object's centre and in
    the two neighbouring cells nearest that centre (one horizontal, one vertical), which the head
    can reach because it predicts centre offsets in (-0.5, 1.5) of a cell. An object may thus
    train several anchors on several levels, or none when no anchor is within the factor.
``iou_center``
    Every level and anchor is tried: the anchor box is put at the centre of the cell holding the
    object's centre and scored by IoU with the object minus the squared centre distance over the
    squared diagonal of their enclosing box (DIoU, Zheng et al. 2020: IoU plus a normalised
    centre-distance penalty). Every (level, anchor) scoring at least ``anchor_iou`` is a match, and
    the best one always is, so no object is left without an anchor. One cell per match.

Output per level: which image, anchor and cell, the target box in that cell's grid units and the
class (see :class:`AnchorTargets`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..boxes import aligned_iou

__all__ = ["ANCHOR_MODES", "AnchorTargets", "AnchorMatcher"]

ANCHOR_MODES = ("ratio", "iou_center")


@dataclass
class AnchorTargets:
    """Positives of one level (P of them).

    batch, anchor, gy, gx: (P,) long, the image, anchor index and cell row / column;
    boxes: (P, 4) target (cx, cy, w, h) in grid units of the level, the centre relative to the
    cell's top-left corner; anchor_wh: (P, 2) the matched anchor in grid units; classes: (P,) long.
    """

    batch: Tensor
    anchor: Tensor
    gy: Tensor
    gx: Tensor
    boxes: Tensor
    anchor_wh: Tensor
    classes: Tensor


class AnchorMatcher(nn.Module):
    def __init__(self, mode: str = "ratio", anchor_t: float = 4.0, anchor_iou: float = 0.25):
        super().__init__()
        if mode not in ANCHOR_MODES:
            raise ValueError(f"assign.anchor: {mode!r} is not one of {', '.join(ANCHOR_MODES)}")
        self.mode, self.anchor_t, self.anchor_iou = mode, anchor_t, anchor_iou

    @torch.no_grad()
    def forward(
        self,
        targets: Tensor,
        anchors: Tensor,
        strides: tuple[int, ...],
        grids: list[tuple[int, int]],
    ) -> list[AnchorTargets]:
        """targets: (T, 6) ``[batch_index, cls, x1, y1, x2, y2]`` pixels; anchors: (L, A, 2) (w, h)
        pixels; strides: L strides; grids: L (H, W) map sizes. Returns one entry per level."""
        targets = targets.float()
        xy = (targets[:, 2:4] + targets[:, 4:6]) / 2
        wh = targets[:, 4:6] - targets[:, 2:4]
        if self.mode == "ratio":
            pairs = self._ratio_pairs(wh, anchors, strides)
        else:
            pairs = self._iou_center_pairs(xy, wh, anchors, strides, grids)
        out = []
        for lv, (t_idx, a_idx) in enumerate(pairs):
            s = float(strides[lv])
            g = xy[t_idx] / s
            cells = torch.floor(g)
            if self.mode == "ratio":
                cells, t_idx, a_idx, g = _with_neighbours(cells, t_idx, a_idx, g, grids[lv])
            h, w = grids[lv]
            gx = cells[:, 0].clamp(0, w - 1)
            gy = cells[:, 1].clamp(0, h - 1)
            boxes = torch.cat([g - torch.stack([gx, gy], 1), wh[t_idx] / s], 1)
            out.append(
                AnchorTargets(
                    batch=targets[t_idx, 0].long(),
                    anchor=a_idx,
                    gy=gy.long(),
                    gx=gx.long(),
                    boxes=boxes,
                    anchor_wh=anchors[lv, a_idx].float() / s,
                    classes=targets[t_idx, 1].long(),
                )
            )
        return out

    def _ratio_pairs(self, wh: Tensor, anchors: Tensor, strides) -> list[tuple[Tensor, Tensor]]:
        """Per level, (object, anchor) index pairs whose sizes agree within ``anchor_t``."""
        pairs = []
        for lv in range(len(strides)):
            r = wh[:, None, :] / anchors[lv][None].float()  # (T, A, 2)
            worst = torch.maximum(r, 1.0 / r).amax(-1)
            t_idx, a_idx = (worst < self.anchor_t).nonzero(as_tuple=True)
            pairs.append((t_idx, a_idx))
        return pairs

    def _iou_center_pairs(
        self, xy: Tensor, wh: Tensor, anchors: Tensor, strides, grids
    ) -> list[tuple[Tensor, Tensor]]:
        """Per level, (object, anchor) pairs by DIoU of the cell-centred anchor box."""
        n_lv, n_a = anchors.shape[:2]
        gt = torch.cat([xy - wh / 2, xy + wh / 2], 1)  # (T, 4)
        scores = []
        for lv in range(n_lv):
            s = float(strides[lv])
            h, w = grids[lv]
            cell = torch.floor(xy / s)
            cell = torch.stack([cell[:, 0].clamp(0, w - 1), cell[:, 1].clamp(0, h - 1)], 1)
            centre = (cell + 0.5) * s  # (T, 2)
            a = anchors[lv].float()  # (A, 2)
            boxes = torch.cat([centre[:, None] - a / 2, centre[:, None] + a / 2], -1)  # (T, A, 4)
            scores.append(aligned_iou(boxes, gt[:, None].expand_as(boxes), "diou"))
        score = torch.cat(scores, 1)  # (T, L*A), level-major
        match = score >= self.anchor_iou
        if score.shape[0]:
            match[torch.arange(score.shape[0]), score.argmax(1)] = True
        t_idx, flat = match.nonzero(as_tuple=True)
        lv_idx, a_idx = flat // n_a, flat % n_a
        return [(t_idx[lv_idx == lv], a_idx[lv_idx == lv]) for lv in range(n_lv)]


def _with_neighbours(
    cells: Tensor, t_idx: Tensor, a_idx: Tensor, g: Tensor, grid: tuple[int, int]
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Add, for each match, the horizontal and the vertical neighbour cell nearest the centre
    ``g`` (grid units), where that neighbour lies inside the map."""
    h, w = grid
    frac = g - cells
    size = g.new_tensor([w, h])
    before = (frac < 0.5) & (g > 1.0)  # nearer the left / top edge of its cell
    after = (frac > 0.5) & (size - g > 1.0)  # nearer the right / bottom edge
    unit = torch.eye(2, device=g.device, dtype=g.dtype)
    parts_c, parts_t, parts_a, parts_g = [cells], [t_idx], [a_idx], [g]
    for axis in (0, 1):
        for mask, sign in ((before[:, axis], -1.0), (after[:, axis], 1.0)):
            parts_c.append(cells[mask] + sign * unit[axis])
            parts_t.append(t_idx[mask])
            parts_a.append(a_idx[mask])
            parts_g.append(g[mask])
    return torch.cat(parts_c), torch.cat(parts_t), torch.cat(parts_a), torch.cat(parts_g)
