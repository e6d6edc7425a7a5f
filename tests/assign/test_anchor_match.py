"""Both anchor matching rules on a hand-built case (two objects, two levels, two anchors each)."""

import pytest
import torch

from detforge.assign.anchor_match import AnchorMatcher

STRIDES = (8, 16)
GRIDS = [(8, 8), (4, 4)]  # a 64 px image
ANCHORS = torch.tensor([[[8.0, 8.0], [16.0, 32.0]], [[32.0, 32.0], [64.0, 16.0]]])
# A: image 0, class 1, centre (18, 13), 8 x 6; B: image 1, class 0, centre (42, 38), 60 x 20
TARGETS = torch.tensor([[0, 1, 14, 10, 22, 16], [1, 0, 12, 28, 72, 48]], dtype=torch.float32)


def matched(out):
    """{(level, image, anchor, row, column, class)} of every positive."""
    got = set()
    for lv, t in enumerate(out):
        for b, a, gy, gx, c in zip(t.batch, t.anchor, t.gy, t.gx, t.classes, strict=True):
            got.add((lv, int(b), int(a), int(gy), int(gx), int(c)))
    return got


def test_ratio_mode_matches_by_size_ratio_with_two_neighbour_cells():
    out = AnchorMatcher("ratio", anchor_t=4.0)(TARGETS, ANCHORS, STRIDES, GRIDS)
    # A fits only anchor 0 of P3 (ratios 1, 1.33); centre (2.25, 1.625) cells: own (2, 1), left
    # (1, 1) as x is in the left half, below (2, 2) as y is in the lower half
    a = {(0, 0, 0, 1, 2, 1), (0, 0, 0, 1, 1, 1), (0, 0, 0, 2, 2, 1)}
    # B (60 x 20) fits P3 anchor 1 (x3.75), both P4 anchors (x1.875, x1.07); P3 centre
    # (5.25, 4.75): left and below; P4 centre (2.625, 2.375): right and above
    b = {(0, 1, 1, 4, 5, 0), (0, 1, 1, 4, 4, 0), (0, 1, 1, 5, 5, 0)}
    for anchor in (0, 1):
        b |= {(1, 1, anchor, 2, 2, 0), (1, 1, anchor, 2, 3, 0), (1, 1, anchor, 1, 2, 0)}
    assert matched(out) == a | b
    # targets in the cell's grid units: A's own cell, and its left neighbour one cell further
    p3 = out[0]
    own = (p3.batch == 0) & (p3.gx == 2) & (p3.gy == 1)
    left = (p3.batch == 0) & (p3.gx == 1)
    torch.testing.assert_close(p3.boxes[own][0], torch.tensor([0.25, 0.625, 1.0, 0.75]))
    torch.testing.assert_close(p3.boxes[left][0], torch.tensor([1.25, 0.625, 1.0, 0.75]))
    torch.testing.assert_close(p3.anchor_wh[own][0], torch.tensor([1.0, 1.0]))


def test_ratio_threshold_decides():
    out = AnchorMatcher("ratio", anchor_t=3.0)(TARGETS, ANCHORS, STRIDES, GRIDS)
    # B's x3.75 match with P3 anchor 1 is gone
    assert not any(lv == 0 and img == 1 for lv, img, *_ in matched(out))


def test_iou_center_mode_best_scale_and_anchor_plus_threshold():
    out = AnchorMatcher("iou_center", anchor_iou=0.35)(TARGETS, ANCHORS, STRIDES, GRIDS)
    # DIoU of the cell-centred anchor box: A matches P3 anchor 0 (0.44; the rest under 0.1);
    # B matches P4 anchor 1 (0.76) and P4 anchor 0 (0.40), not P3 anchor 1 (0.23). One cell each.
    assert matched(out) == {(0, 0, 0, 1, 2, 1), (1, 1, 1, 2, 2, 0), (1, 1, 0, 2, 2, 0)}
    p4 = out[1]
    torch.testing.assert_close(p4.boxes[0], torch.tensor([42 / 16 - 2, 38 / 16 - 2, 3.75, 1.25]))


def test_iou_center_keeps_the_best_anchor_below_the_threshold():
    out = AnchorMatcher("iou_center", anchor_iou=0.9)(TARGETS, ANCHORS, STRIDES, GRIDS)
    assert matched(out) == {(0, 0, 0, 1, 2, 1), (1, 1, 1, 2, 2, 0)}


def test_no_targets_gives_empty_levels():
    for mode in ("ratio", "iou_center"):
        out = AnchorMatcher(mode)(torch.zeros(0, 6), ANCHORS, STRIDES, GRIDS)
        assert [len(t.batch) for t in out] == [0, 0]


def test_unknown_mode_is_named():
    with pytest.raises(ValueError, match="assign.anchor"):
        AnchorMatcher("nearest")
