"""P / R / F1 against confidence, the best-F1 operating point, mean IoU, and ``explain``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detforge.eval._match import to_records
from detforge.eval.coco import COCOEvaluator
from detforge.eval.metrics import (
    SCALAR_METRICS,
    confidence_curves,
    match_table,
    mean_matched_iou,
    prf_at,
    scalar_metrics,
)
from detforge.report.explain import explain
from detforge.report.run_report import format_per_class


def _box(i: int, h: float = 10.0) -> list[float]:
    """Object i of a row of 10 x 10 squares; ``h`` < 10 gives IoU h / 10 with it."""
    return [20.0 * i, 0.0, 20.0 * i + 10, h]


def _one_class_case():
    """4 objects; detections by score: TP, FP, TP, TP, FP."""
    gt = {0: ([_box(i) for i in range(4)], [0, 0, 0, 0])}
    boxes = [_box(0), _box(9), _box(1), _box(2), _box(8)]
    pred = {0: (boxes, [0.9, 0.8, 0.7, 0.6, 0.3], [0] * 5)}
    return pred, gt


def test_precision_recall_f1_by_hand():
    pred, gt = _one_class_case()
    table = match_table(to_records(pred, gt), 1)
    p, r, f1 = prf_at(table, 0.65)  # 0.9 TP, 0.8 FP, 0.7 TP
    assert (p[0], r[0], f1[0]) == pytest.approx((2 / 3, 0.5, 4 / 7))
    p, r, f1 = prf_at(table, 0.95)  # nothing above: precision 0 by convention
    assert (p[0], r[0], f1[0]) == (0.0, 0.0, 0.0)
    cv = confidence_curves(table)
    # F1 is 0.75 for 0.3 < c <= 0.6 (3 TP of 4 detections, 3 of 4 objects), lower elsewhere
    assert cv.conf[cv.best] == pytest.approx(0.301)
    assert cv.mean(cv.f1)[cv.best] == pytest.approx(0.75)
    m = scalar_metrics(pred, gt, 1)
    assert tuple(m) == SCALAR_METRICS
    assert (m["precision"], m["recall"], m["f1"], m["mean_iou"]) == pytest.approx(
        (0.75, 0.75, 0.75, 1.0)
    )


def test_means_run_over_classes_with_ground_truth():
    pred, gt = _one_class_case()
    # class 1: one object found at 0.5; class 2: no ground truth, only a false positive
    gt[0] = (gt[0][0] + [_box(5)], gt[0][1] + [1])
    pred[0] = (pred[0][0] + [_box(5), _box(7)], pred[0][1] + [0.5, 0.99], pred[0][2] + [1, 2])
    table = match_table(to_records(pred, gt), 3)
    p, r, f1 = prf_at(table, 0.4)
    assert p.tolist() == pytest.approx([0.75, 1.0, 0.0]) and r[2] == 0.0
    cv = confidence_curves(table)
    i = int(np.searchsorted(cv.conf, 0.4))
    assert cv.mean(cv.f1)[i] == pytest.approx((0.75 + 1.0) / 2)  # class 2 left out


def test_mean_iou_of_matches_only():
    gt = {0: ([_box(0), _box(1)], [0, 0]), 1: ([_box(0)], [1])}
    pred = {
        0: ([_box(0, 8), _box(1, 6), _box(5)], [0.9, 0.8, 0.7], [0, 0, 0]),  # IoU .8, .6, FP
        1: ([_box(0, 3)], [0.9], [1]),  # IoU 0.3: not a match at 0.5
    }
    table = match_table(to_records(pred, gt), 2)
    assert mean_matched_iou(table) == pytest.approx(0.7)
    assert mean_matched_iou(table, conf=0.85) == pytest.approx(0.8)
    assert scalar_metrics(pred, gt, 2)["mean_iou"] == pytest.approx(0.7)
    assert scalar_metrics({}, gt, 2) == {"precision": 0, "recall": 0, "f1": 0, "mean_iou": 0}


def test_crowd_regions_absorb_detections():
    gt = {0: ([_box(0), [100, 0, 200, 50]], [0, 0], [False, True])}
    pred = {0: ([_box(0), [110, 5, 130, 25]], [0.9, 0.8], [0, 0])}
    p, r, _ = prf_at(match_table(to_records(pred, gt), 1), 0.5)
    assert (p[0], r[0]) == (1.0, 1.0)  # the box inside the crowd is neither TP nor FP


def _random_case(seed: int, k: int = 3, n_img: int = 30):
    rng = np.random.default_rng(seed)
    preds, gts = {}, {}
    for i in range(n_img):
        m = int(rng.integers(0, 6))
        xy = rng.uniform(0, 300, (m, 2))
        gb = np.concatenate([xy, xy + rng.uniform(8, 80, (m, 2))], 1)
        gc = rng.integers(0, k, m)
        n = int(rng.integers(0, 40))
        src = rng.integers(0, max(m, 1), n)
        b = (gb[src] if m else rng.uniform(0, 300, (n, 4))) + rng.normal(0, 6, (n, 4))
        b[:, 2:] = np.maximum(b[:, 2:], b[:, :2] + 1)
        c = np.where(rng.uniform(size=n) < 0.85, gc[src] if m else 0, rng.integers(0, k, n))
        preds[i], gts[i] = (b, rng.uniform(size=n), c), (gb, gc)
    return preds, gts


def test_recall_at_zero_confidence_equals_coco_recall():
    preds, gts = _random_case(1)
    ev = COCOEvaluator(num_classes=3)
    for i in gts:
        ev.process(i, *preds[i], *gts[i])
    res = ev.evaluate()
    _, r, _ = prf_at(match_table(to_records(preds, gts), 3), 0.0)
    assert np.allclose(r, res.recall[0, :, 0, -1])  # IoU 0.5, all areas, 100 detections


def test_explain_writes_everything(tmp_path):
    preds, gts = _random_case(2)
    ev = COCOEvaluator(num_classes=3)
    for i in gts:
        ev.process(i, *preds[i], *gts[i])
    res = ev.evaluate()
    names = ["cat", "dog", "eel"]
    out = explain(res, preds, gts, names, tmp_path, conf=0.5)
    m = scalar_metrics(preds, gts, 3)
    assert {k: out["metrics"][k] for k in SCALAR_METRICS} == pytest.approx(m)
    assert out["at_conf"]["conf"] == 0.5 and out["confusion"]["conf"] == 0.5
    files = ["metrics.json", "per_class.csv", "pr_curve.png", "pr_curve.csv", "f1_curve.png",
             "p_curve.png", "r_curve.png", "conf_curves.csv", "confusion_matrix.png",
             "confusion_matrix.csv", "confusion_matrix_normalized.png"]  # fmt: skip
    for f in files:
        assert (tmp_path / f).stat().st_size > 0, f
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["per_class"][1]["ap50"] == res.per_class[1]["ap50"]
    # the mean PR curve integrates (101-point mean) to the evaluator's mAP50
    rows = (tmp_path / "pr_curve.csv").read_text().splitlines()
    mean_curve = [float(line.split(",")[1]) for line in rows[1:]]
    assert np.mean(mean_curve) == pytest.approx(res.stats["map50"], abs=1e-6)
    table = format_per_class(res, names, out)
    assert "P" in table.splitlines()[0] and "dog" in table
