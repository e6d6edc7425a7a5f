"""Test-time augmentation: exact round trips of every view, WBF, the merge choice, ensembles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from detforge.infer.postprocess import postprocess
from detforge.infer.tta import (
    View,
    build_views,
    ensemble_predict,
    parse_transforms,
    tta_predict,
    weighted_box_fusion,
)
from detforge.models.decode import decode

H, W = 64, 96
RECT = [40.0, 8.0, 72.0, 24.0]  # x1, y1, x2, y2: off-centre and wider than high


class RectFinder(nn.Module):
    """A fake detector whose raw maps decode to the bright rectangle it sees in its input.

    Whatever view it is shown, it reports the rectangle in that view's frame, exactly (the DFL
    bins hold each side's distance as a two-bin mixture), so mapping the box back must give
    RECT again. ``shift`` moves its box and ``logit`` sets its class-0 score.
    """

    strides, reg_max, nc = (8,), 16, 2

    def __init__(self, shift: float = 0.0, logit: float = 4.0):
        super().__init__()
        self.shift, self.logit = shift, logit

    def forward(self, x):
        b, _, h, w = x.shape
        out = torch.full((b, 4 * self.reg_max + self.nc, h // 8, w // 8), -30.0)
        for i in range(b):
            ys, xs = torch.nonzero(x[i, 0] > 0.5, as_tuple=True)
            x1, y1 = xs.min().item() + self.shift, ys.min().item() + self.shift
            x2, y2 = xs.max().item() + 1 + self.shift, ys.max().item() + 1 + self.shift
            gx, gy = int((x1 + x2) / 16), int((y1 + y2) / 16)
            px, py = (gx + 0.5) * 8, (gy + 0.5) * 8
            for side, d in enumerate([(px - x1) / 8, (py - y1) / 8, (x2 - px) / 8, (y2 - py) / 8]):
                lo, frac = int(math.floor(d)), d - math.floor(d)
                bins = out[i, side * 16 : (side + 1) * 16, gy, gx]
                bins[lo] = math.log(1 - frac) if frac < 1 else -30
                bins[lo + 1] = math.log(frac) if frac > 0 else -30
            out[i, 4 * self.reg_max, gy, gx] = self.logit
        return [out]


def _image(batch: int = 1) -> torch.Tensor:
    x = torch.zeros(batch, 3, H, W)
    x1, y1, x2, y2 = map(int, RECT)
    x[:, :, y1:y2, x1:x2] = 1.0
    return x


VIEWS = [
    View(flip=True),
    View(vflip=True),
    View(rot=1),
    View(rot=2),
    View(rot=3),
    View(scale=0.5),
    View(scale=2.0),
    View(scale=0.5, flip=True),
    View(scale=2.0, vflip=True),
]


@pytest.mark.parametrize("view", VIEWS, ids=str)
def test_each_view_maps_back_exactly(view):
    dets = ensemble_predict([RectFinder()], _image(2), views=[view], conf=0.5)
    for d in dets:
        assert len(d) == 1
        assert torch.allclose(d.boxes[0], torch.tensor(RECT), atol=1e-3)


def test_the_fake_model_really_sees_the_transformed_frame():
    # Without the inverse mapping a turned view would report a different box.
    x = torch.rot90(_image(), 1, dims=(-2, -1))
    boxes, scores = decode(RectFinder()(x), (8,), 16)
    det = postprocess(boxes, scores, 0.5)[0]
    assert not torch.allclose(det.boxes[0], torch.tensor(RECT), atol=1.0)


@pytest.mark.parametrize("merge", ["nms", "wbf"])
def test_all_views_merged_give_the_box_once(merge):
    views = build_views(("flip", "vflip", "scale", "rot90"), scales=(0.5, 1.0, 2.0))
    assert len(views) == 3 * 3 + 3 and views[0] == View()
    d = ensemble_predict([RectFinder()], _image(), views=views, merge=merge, conf=0.5)[0]
    assert len(d) == 1
    assert torch.allclose(d.boxes[0], torch.tensor(RECT), atol=1e-3)
    assert d.scores[0].item() == pytest.approx(torch.sigmoid(torch.tensor(4.0)).item(), abs=1e-6)


def test_wbf_of_identical_boxes_fuses_the_scores():
    box = np.array([[10.0, 20.0, 50.0, 60.0]])
    b, s, lab = weighted_box_fusion([box, box, box], [[0.9], [0.8], [0.7]], [[1], [1], [1]])
    assert np.allclose(b, box) and np.allclose(s, [0.8]) and lab.tolist() == [1]
    # found by 2 of 3 lists: the mean score is damped by 2/3
    _, s, _ = weighted_box_fusion([box, box, np.zeros((0, 4))], [[0.9], [0.6], []], [[1], [1], []])
    assert np.allclose(s, [0.75 * 2 / 3])


def test_wbf_averages_by_score_and_keeps_labels_and_far_boxes_apart():
    a, b = np.array([[0.0, 0, 10, 10]]), np.array([[1.0, 1, 11, 11]])  # IoU 0.68
    boxes, scores, _ = weighted_box_fusion([a, b], [[1.0], [0.5]], [[0], [0]])
    assert np.allclose(boxes, [[1 / 3, 1 / 3, 31 / 3, 31 / 3]]) and np.allclose(scores, [0.75])
    boxes, _, labels = weighted_box_fusion([a, b], [[1.0], [0.5]], [[0], [1]])
    assert len(boxes) == 2 and sorted(labels.tolist()) == [0, 1]
    far = np.array([[50.0, 50, 60, 60]])
    assert len(weighted_box_fusion([a, far], [[1.0], [0.5]], [[0], [0]])[0]) == 2
    # weights scale a list's say: model 2 twice as trusted
    _, s, _ = weighted_box_fusion([a, a], [[0.9], [0.6]], [[0], [0]], weights=[1, 2])
    assert np.allclose(s, [(0.9 + 1.2) / 2 * 2 / 3])


def test_merge_choice_acts():
    models = [RectFinder(logit=4.0), RectFinder(shift=1.0, logit=2.0)]
    nms = ensemble_predict(models, _image(), conf=0.5, merge="nms")[0]
    wbf = ensemble_predict(models, _image(), conf=0.5, merge="wbf")[0]
    assert torch.allclose(nms.boxes, torch.tensor([RECT]), atol=1e-3)  # the stronger box wins
    s1, s2 = torch.sigmoid(torch.tensor([4.0, 2.0])).tolist()
    fused = (s1 * np.array(RECT) + s2 * (np.array(RECT) + 1)) / (s1 + s2)
    assert np.allclose(wbf.boxes.numpy(), [fused], atol=1e-3)
    assert wbf.scores.item() == pytest.approx((s1 + s2) / 2, abs=1e-6)
    with pytest.raises(ValueError, match="merge"):
        ensemble_predict(models, _image(), merge="mean")


def _sorted(det):
    key = np.lexsort(det.boxes.numpy().T[::-1])
    return det.boxes.numpy()[key], det.scores.numpy()[key], det.classes.numpy()[key]


def test_ensemble_of_the_same_model_twice_equals_the_model():
    from detforge.models import build_model

    torch.manual_seed(0)
    model = build_model("yolo-n", 3).eval()
    x = torch.rand(2, 3, 64, 64)
    # no transforms and one model: the plain validator path, exactly
    boxes, scores = decode([o.float() for o in model(x)], model.strides, model.reg_max)
    plain = postprocess(boxes, scores, 5e-4, 0.7, 300)
    single = tta_predict(model, x, transforms=(), conf=5e-4)
    for p, s in zip(plain, single, strict=True):
        assert len(p) > 0 and torch.equal(p.boxes, s.boxes) and torch.equal(p.scores, s.scores)
    for merge in ("nms", "wbf"):
        one = ensemble_predict([model], x, merge=merge, conf=5e-4)
        two = ensemble_predict([model, model], x, merge=merge, conf=5e-4)
        for a, b in zip(one, two, strict=True):
            for u, v in zip(_sorted(a), _sorted(b), strict=True):
                assert np.allclose(u, v, atol=1e-5)


def test_parse_transforms():
    assert parse_transforms("flip, scale") == ("flip", "scale")
    assert parse_transforms(None) == () and build_views(()) == [View()]
    with pytest.raises(ValueError, match="rot45"):
        parse_transforms("flip,rot45")


def test_bench_tta_effect_runs_on_any_checkpoint(tmp_path):
    import importlib.util
    import json
    from dataclasses import asdict
    from pathlib import Path

    from detforge.data.demo import CLASS_NAMES, generate_demo_dataset
    from detforge.models import build_model

    data = generate_demo_dataset(tmp_path / "data", num_train=1, num_val=3, imgsz=64)
    model = build_model("yolo-n", len(CLASS_NAMES))
    ckpt = {
        "format": "detforge-checkpoint-1",
        "model_spec": asdict(model.spec),
        "num_classes": model.nc,
        "names": list(CLASS_NAMES),
        "model": model.state_dict(),
        "ema": None,
        "config": {"train": {"imgsz": 64}},
    }
    torch.save(ckpt, tmp_path / "w.pt")
    path = Path(__file__).resolve().parents[2] / "bench" / "tta_effect.py"
    spec = importlib.util.spec_from_file_location("tta_effect", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "r.json"
    args = [
        "--weights",
        f"{tmp_path / 'w.pt'},{tmp_path / 'w.pt'}",
        "--data",
        str(data),
        "--modes",
        "plain,flip+rot90:wbf,none:nms",
        "--out",
        str(out),
    ]
    assert bench.main(args) == 0
    res = json.loads(out.read_text())["results"]
    assert [r["mode"] for r in res] == ["plain", "flip+rot90:wbf", "none:nms"]
    assert all(r["images"] == 3 and "map50_95" in r["stats"] for r in res)
