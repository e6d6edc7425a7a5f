"""COCOEvaluator against pycocotools (the oracle): the 12 stats and the raw tables must agree.

Agreement is asserted to 1e-12 on the stats and bit for bit on precision / recall / scores; the
requirement is 1e-4, the implementation is meant to be exact.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from detforge.eval.coco import STAT_KEYS, COCOEvaluator, EvalResult
from detforge.eval.cocojson import evaluate_coco, evaluate_coco_json

TOL = 1e-12


def assert_matches(res: EvalResult, e, class_ids: list) -> None:
    """``res`` equals the pycocotools COCOeval ``e`` on every stat, table and per-class AP."""
    np.testing.assert_allclose(res.stats_array(), e.stats, rtol=0, atol=TOL)
    for name in ("precision", "recall", "scores"):
        ours, ref = getattr(res, name), e.eval[name]
        assert ours.shape == ref.shape, name
        bad = np.argwhere(ours != ref)
        assert bad.size == 0, f"{name} differs at {len(bad)} places, first {tuple(bad[0])}"
    assert res.class_ids == class_ids
    prec, thr = e.eval["precision"], e.params.iouThrs
    for k, cid in enumerate(class_ids):
        s = prec[:, :, k, 0, -1]
        want = np.mean(s[s > -1]) if (s > -1).any() else -1.0
        assert res.per_class[cid]["ap50_95"] == pytest.approx(want, abs=TOL)
        t50 = np.flatnonzero(thr == 0.5)
        if t50.size:
            s = prec[t50[0], :, k, 0, -1]
            want = np.mean(s[s > -1]) if (s > -1).any() else -1.0
            assert res.per_class[cid]["ap50"] == pytest.approx(want, abs=TOL)


# ----------------------------------------------------------------------------- shared data
@pytest.mark.parametrize(
    "folder, gt_name, dt_name",
    [
        ("evalbench", "gt.json", "dt.json"),
        ("hituav-peer-predictions", "gt_val.json", "predictions.json"),  # string image ids
    ],
)
def test_shared_benchmarks_match_pycocotools(shared_bench, pycoco, folder, gt_name, dt_name):
    d = shared_bench / folder
    res = evaluate_coco_json(d / gt_name, d / dt_name)
    # Stored reference stats first (no oracle needed), then a live run for the full tables.
    ref_file = d / ("bench_result.json" if folder == "evalbench" else "pycocotools_stats.json")
    stored = json.loads(ref_file.read_text())["pycocotools"]["stats"]
    np.testing.assert_allclose(res.stats_array(), stored, rtol=0, atol=TOL)
    gt = json.loads((d / gt_name).read_text())
    e = pycoco(gt, json.loads((d / dt_name).read_text()))
    assert_matches(res, e, sorted(c["id"] for c in gt["categories"]))
    for cid in res.class_ids:
        n = sum(1 for a in gt["annotations"] if a["category_id"] == cid and not a["iscrowd"])
        assert res.per_class[cid]["num_gt"] == n


# ----------------------------------------------------------------------------- synthetic
def _boxes(rng: np.random.Generator, n: int, grid: bool) -> np.ndarray:
    """(n, 4) xyxy boxes, sizes log-uniform 3..200 px so all three COCO area ranges occur."""
    w = np.exp(rng.uniform(np.log(3), np.log(200), n))
    h = np.clip(w * np.exp(rng.normal(0, 0.4, n)), 2, 300)
    x, y = rng.uniform(0, 500, n), rng.uniform(0, 400, n)
    b = np.stack([x, y, x + w, y + h], axis=1)
    return np.round(b) if grid else b


def make_case(seed: int, **opt) -> tuple[dict, list[dict], list[tuple]]:
    """Random COCO case: (gt json dict, result list, per-image ``process`` arguments).

    Options: n_img, n_cls, crowd (fraction), custom_area, empty_imgs (images without GT),
    ties (scores from 5 values), grid (integer boxes: exact IoU ties and duplicates),
    many (an image with 130 detections of one class), no_preds, str_ids.
    The last class never has ground truth, the one before it is never predicted.
    """
    rng = np.random.default_rng(seed)
    n_img, n_cls = opt.get("n_img", 10), opt.get("n_cls", 5)
    grid = opt.get("grid", False)
    ids = [f"im{i:03d}" if opt.get("str_ids") else 7 * i + 3 for i in range(n_img)]
    rng.shuffle(ids)  # processing order differs from pycocotools' sorted order
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 640, "height": 480} for i in ids]
    anns, dets, calls = [], [], []
    for n, iid in enumerate(ids):
        ng = 0 if n < opt.get("empty_imgs", 2) else int(rng.integers(1, 9))
        gb, gc = _boxes(rng, ng, grid), rng.integers(0, n_cls - 1, ng)
        crowd = rng.random(ng) < opt.get("crowd", 0.1)
        wh = (gb[:, 2] - gb[:, 0]) * (gb[:, 3] - gb[:, 1])
        area = wh * rng.uniform(0.3, 3.0, ng) if opt.get("custom_area") else None
        db, dc = [np.zeros((0, 4))], [np.zeros(0, np.int64)]
        for j in range(ng):  # 0-3 jittered copies of each ground truth
            k = int(rng.integers(0, 4))
            size = np.array([gb[j, 2] - gb[j, 0], gb[j, 3] - gb[j, 1]] * 2)
            jit = gb[j] + rng.normal(0, 0.08, (k, 4)) * size
            db.append(np.round(jit) if grid else jit)
            dc.append(np.where(rng.random(k) < 0.1, rng.integers(0, n_cls, k), gc[j]))
        nr = 130 if (opt.get("many") and n == n_img - 1) else int(rng.integers(0, 10))
        db.append(_boxes(rng, nr, grid))
        dc.append(np.zeros(nr, np.int64) if opt.get("many") else rng.integers(0, n_cls, nr))
        db, dc = np.concatenate(db), np.concatenate(dc)
        dc[dc == n_cls - 2] = 0  # one class is never predicted
        ds = (
            rng.choice([0.1, 0.3, 0.5, 0.7, 0.9], len(db))
            if opt.get("ties")
            else rng.random(len(db))
        )
        if opt.get("no_preds"):
            db, dc, ds = db[:0], dc[:0], ds[:0]
        calls.append((iid, db, ds, dc, gb, gc, crowd, area))
        for j in range(ng):
            x1, y1, x2, y2 = gb[j].tolist()
            w, h = x2 - x1, y2 - y1
            anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": int(gc[j]) + 1,
                         "bbox": [x1, y1, w, h], "iscrowd": int(crowd[j]),
                         "area": float(area[j]) if area is not None else w * h})  # fmt: skip
        for b, s, c in zip(db.tolist(), ds.tolist(), dc.tolist(), strict=True):
            ltwh = [b[0], b[1], b[2] - b[0], b[3] - b[1]]
            dets.append({"image_id": iid, "category_id": c + 1, "bbox": ltwh, "score": s})
    cats = [{"id": c + 1, "name": f"c{c}"} for c in range(n_cls)]
    return {"images": images, "annotations": anns, "categories": cats}, dets, calls


CASES = {
    "plain": dict(seed=0),
    "custom_areas_crowds": dict(seed=1, custom_area=True, crowd=0.25),
    "score_and_iou_ties": dict(seed=2, ties=True, grid=True),
    "over_100_per_image": dict(seed=3, many=True, ties=True),
    "string_ids": dict(seed=4, str_ids=True, crowd=0.2),
    "no_predictions": dict(seed=5),  # no_preds set below
    "all_empty_gt_but_dets": dict(seed=6, empty_imgs=3, n_img=4),
}
CASES["no_predictions"]["no_preds"] = True
# Randomised combinations of every option.
for s in range(10, 18):
    r = np.random.default_rng(s)
    CASES[f"random{s}"] = dict(
        seed=s, n_img=int(r.integers(3, 16)), n_cls=int(r.integers(2, 7)),
        crowd=float(r.uniform(0, 0.3)), custom_area=bool(r.random() < 0.5),
        empty_imgs=int(r.integers(0, 3)), ties=bool(r.random() < 0.5),
        grid=bool(r.random() < 0.5), many=bool(r.random() < 0.3),
        str_ids=bool(r.random() < 0.3),
    )  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_synthetic_matches_pycocotools(pycoco, name):
    opt = dict(CASES[name])
    gt, dets, calls = make_case(opt.pop("seed"), **opt)
    n_cls = len(gt["categories"])
    e = pycoco(gt, dets)
    ev = COCOEvaluator(num_classes=n_cls)
    for args in calls:
        ev.process(*args)  # xyxy numpy, as a training loop would call it
    assert_matches(ev.evaluate(), e, list(range(n_cls)))
    # The json route (ltwh as written, category ids 1..K) gives the same numbers.
    assert_matches(evaluate_coco(gt, dets), e, list(range(1, n_cls + 1)))


def test_custom_iou_thresholds_and_max_dets(pycoco):
    """Threshold 1.0 exercises pycocotools' 1 - 1e-10 cap (grid boxes give IoU exactly 1)."""
    gt, dets, calls = make_case(7, grid=True, many=True, crowd=0.2)
    thrs, mds = [0.3, 0.5, 0.75, 1.0], (1, 5, 20)
    e = pycoco(gt, dets, iou_thrs=thrs, max_dets=mds)
    ev = COCOEvaluator(num_classes=5, iou_thresholds=thrs, max_dets=mds)
    for args in calls:
        ev.process(*args)
    assert_matches(ev.evaluate(), e, list(range(5)))


def test_classes_without_gt_or_dets_give_minus_one(pycoco):
    gt, dets, calls = make_case(8)
    ev = COCOEvaluator(num_classes=5)
    for args in calls:
        ev.process(*args)
    res = ev.evaluate()
    assert res.per_class[4]["ap50_95"] == -1.0 and res.per_class[4]["num_gt"] == 0
    assert (res.precision[:, :, 4] == -1).all() and (res.recall[:, 4] == -1).all()
    # Class 3 has ground truth but no detections: AP 0, not -1.
    assert res.per_class[3]["num_gt"] > 0 and res.per_class[3]["ap50"] == 0.0


def test_torch_inputs_equal_numpy_inputs():
    _, _, calls = make_case(9, crowd=0.2, custom_area=True)
    a, b = COCOEvaluator(num_classes=5), COCOEvaluator(num_classes=5)
    for iid, db, ds, dc, gb, gc, crowd, area in calls:
        # float32 tensors, as a model emits them (classes as float too), vs their float64 values.
        t = [torch.tensor(x, dtype=torch.float32) for x in (db, ds, dc, gb, gc)]
        a.process(iid, *t, torch.tensor(crowd), None if area is None else torch.tensor(area))
        n = [x.numpy().astype(np.float64) for x in t]
        b.process(iid, n[0], n[1], n[2].astype(int), n[3], n[4].astype(int), crowd, area)
    ra, rb = a.evaluate(), b.evaluate()
    assert ra.stats == rb.stats
    assert np.array_equal(ra.precision, rb.precision)


def test_result_layout_and_empty_evaluator():
    ev = COCOEvaluator(num_classes=3)
    res = ev.evaluate()
    assert list(res.stats) == list(STAT_KEYS)
    assert (res.stats_array() == -1).all()
    assert res.precision.shape == (10, 101, 3, 4, 3) and res.recall.shape == (10, 3, 4, 3)
    ev.process(0, [[0, 0, 10, 10]], [0.9], [1], [[0, 0, 10, 10]], [1])
    res = ev.evaluate()
    # One TP at one valid detection: precision 1 / (1 + eps) = 1 - 2.2e-16, as in pycocotools.
    assert 1.0 - 1e-15 < res.stats["map50_95"] < 1.0
    assert res.stats_array()[0] == res.stats["map50_95"]
    assert res.per_class[1]["num_images"] == 1 and res.per_class[0]["ap50"] == -1.0
    ev.reset()
    assert (ev.evaluate().stats_array() == -1).all()


def test_process_errors():
    ev = COCOEvaluator(num_classes=2)
    ev.process(1, np.zeros((0, 4)), [], [], [[0, 0, 5, 5]], [0])
    with pytest.raises(ValueError, match="already processed"):
        ev.process(1, np.zeros((0, 4)), [], [], np.zeros((0, 4)), [])
    with pytest.raises(ValueError, match="class 2"):
        ev.process(2, [[0, 0, 1, 1]], [0.5], [2], np.zeros((0, 4)), [])
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        ev.process(3, [[0, 0, 1]], [0.5], [0], np.zeros((0, 4)), [])
    with pytest.raises(ValueError, match="pred_scores has 2 entries"):
        ev.process(4, [[0, 0, 1, 1]], [0.5, 0.4], [0], np.zeros((0, 4)), [])
    with pytest.raises(ValueError, match="NaN"):
        ev.process(5, [[0, 0, np.nan, 1]], [0.5], [0], np.zeros((0, 4)), [])
    with pytest.raises(ValueError, match="not both"):
        COCOEvaluator(num_classes=2, class_ids=[0, 1])
