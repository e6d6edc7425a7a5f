"""Loss behaviour."""

import torch

from detforge.losses import DetectionLoss, total_loss
from detforge.losses.detection import pad_targets
from detforge.models import build_model
from detforge.models.decode import make_anchors


def _targets():
    return torch.tensor(
        [
            [0, 1, 10.0, 12.0, 60.0, 70.0],
            [0, 0, 80.0, 80.0, 120.0, 110.0],
            [1, 1, 5.0, 5.0, 40.0, 30.0],
        ]
    )


def test_pad_targets_groups_by_image():
    labels, boxes, mask = pad_targets(_targets(), batch_size=3)
    assert labels.shape == (3, 2) and mask.tolist() == [[True, True], [True, False], [False, False]]
    assert boxes[1, 0].tolist() == [5.0, 5.0, 40.0, 30.0]


def test_image_without_objects_has_zero_box_and_dfl_loss():
    torch.manual_seed(0)
    m = build_model("yolo-n", 2)
    loss = DetectionLoss(2, m.strides)
    terms = loss(m(torch.rand(2, 3, 128, 128)), torch.zeros(0, 6))
    assert terms["box"].item() == 0.0 and terms["dfl"].item() == 0.0
    assert terms["cls"].item() > 0


def test_gradients_reach_every_head_and_level():
    torch.manual_seed(0)
    m = build_model("yolo-n-p2", 2)
    loss = DetectionLoss(2, m.strides)
    loss.assigner.topk = 10_000  # every anchor inside an object is positive, on every level
    big = torch.tensor([[1, 0, 2.0, 2.0, 126.0, 126.0]])
    terms = loss(m(torch.rand(2, 3, 128, 128)), torch.cat([_targets(), big]))
    assert set(terms) == {"box", "cls", "dfl"}
    total_loss(terms, 2).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    for lvl in range(len(m.strides)):
        assert m.head.box[lvl][-1].weight.grad.abs().sum() > 0
        assert m.head.cls[lvl][-1].weight.grad.abs().sum() > 0


def _perfect_outputs(boxes_xyxy, cls, nc, strides, size, reg_max=16):
    """Raw maps whose decoded boxes equal the targets at the anchors inside them."""
    outs = [torch.full((1, 4 * reg_max + nc, size // s, size // s), 0.0) for s in strides]
    outs = [o.clone() for o in outs]
    for o in outs:
        o[:, 4 * reg_max :] = -20.0
    pts, st = make_anchors(outs, strides)
    flat_idx = 0
    for o, s in zip(outs, strides, strict=True):
        h, w = o.shape[-2:]
        for yi in range(h):
            for xi in range(w):
                p = (pts[flat_idx] * s).tolist()
                flat_idx += 1
                for b, c in zip(boxes_xyxy, cls, strict=True):
                    x1, y1, x2, y2 = b
                    if not (x1 < p[0] < x2 and y1 < p[1] < y2):
                        continue
                    d = torch.tensor([p[0] - x1, p[1] - y1, x2 - p[0], y2 - p[1]]) / s
                    if d.max() >= reg_max - 1:
                        continue
                    for side in range(4):
                        lo = int(d[side].floor())
                        frac = float(d[side] - lo)
                        logits = torch.full((reg_max,), -1e4)
                        logits[lo] = torch.log(torch.tensor(max(1 - frac, 1e-12)))
                        logits[lo + 1] = torch.log(torch.tensor(max(frac, 1e-12)))
                        o[0, side * reg_max : (side + 1) * reg_max, yi, xi] = logits
                    o[0, 4 * reg_max + c, yi, xi] = 20.0
    return outs


def test_perfect_prediction_has_near_zero_box_loss():
    strides = (8, 16, 32)
    boxes = [[20.0, 24.0, 84.0, 76.0]]
    outs = _perfect_outputs(boxes, [1], nc=2, strides=strides, size=128)
    t = torch.tensor([[0, 1, *boxes[0]]])
    terms = DetectionLoss(2, strides)(outs, t)
    assert terms["box"].item() < 1e-4
    # a shifted target is penalised
    t2 = torch.tensor([[0, 1, 30.0, 34.0, 94.0, 86.0]])
    assert DetectionLoss(2, strides)(outs, t2)["box"].item() > 0.05
