"""Task-aligned assigner behaviour."""

import torch

from detforge.assign import TaskAlignedAssigner


def test_assigner_topk_and_exclusivity():
    a = TaskAlignedAssigner(num_classes=2, topk=3)
    pts = torch.tensor([[x + 0.5, 8.5] for x in range(0, 16)]) * 1.0
    n = len(pts)
    pred_boxes = torch.cat([pts - 4, pts + 4], -1)[None]
    scores = torch.full((1, n, 2), 0.5)
    gt = torch.tensor([[[0.0, 0.0, 8.0, 16.0], [4.0, 0.0, 12.0, 16.0]]])
    res = a(scores, pred_boxes, pts, torch.tensor([[0, 1]]), gt, torch.tensor([[True, True]]))
    assert res.fg_mask.sum() <= 6
    # each positive anchor lies inside the box it was given
    for i in res.fg_mask[0].nonzero().flatten().tolist():
        b = res.boxes[0, i]
        assert b[0] < pts[i, 0] < b[2]
    # soft targets: the best anchor of each object gets that object's best IoU
    assert res.scores.max() <= 1.0 + 1e-6 and res.scores.sum() > 0
    empty = a(
        scores,
        pred_boxes,
        pts,
        torch.zeros(1, 0, dtype=torch.long),
        torch.zeros(1, 0, 4),
        torch.zeros(1, 0, dtype=torch.bool),
    )
    assert not empty.fg_mask.any() and empty.scores.sum() == 0
