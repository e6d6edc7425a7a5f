"""TIDE-style diagnosis: each error type on a hand-built case, oracle dAPs, AP consistency with
the COCO evaluator, outputs and the COCO json entry point."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detforge.eval._match import to_records
from detforge.eval._tide import ERROR_TYPES, classify, mean_defined, oracle_ap
from detforge.eval.coco import COCOEvaluator
from detforge.report.diagnose import diagnose, diagnose_coco_json, format_diagnosis

NAMES = ["a", "b"]
# Scene: object A (class a) and object B (class b), each found by a correct detection; the
# B detection scores below the erroneous ones added per case, so removing an error in class b
# lifts class b's AP from 0.5 to 1.
A, B, C, D = [0, 0, 100, 100], [300, 300, 400, 400], [600, 0, 700, 100], [600, 600, 700, 700]
BASE_DETS = [(A, 0.95, 0), (B, 0.5, 1)]


def _run(extra_dets, extra_gt=()):
    dets = BASE_DETS + list(extra_dets)
    gt = [(A, 0), (B, 1), *extra_gt]
    pred = {0: (np.array([d[0] for d in dets], float), [d[1] for d in dets], [d[2] for d in dets])}
    truth = {0: (np.array([g[0] for g in gt], float), [g[1] for g in gt])}
    t = classify(to_records(pred, truth), 2)
    counts = {e: int((t.d_err == i).sum()) for i, e in enumerate(ERROR_TYPES[:5])}
    counts["miss"] = int(t.g_missed.sum())
    aps = oracle_ap(t)
    dap = {e: mean_defined(aps[e]) - mean_defined(aps["base"]) for e in ERROR_TYPES}
    return counts, dap


CASES = {
    # a second class-a box on A, which the 0.95 detection already took; a third class-a object
    # D found at 0.3 makes the duplicate cost AP
    "dupe": ([([0, 0, 100, 90], 0.9, 0), (D, 0.3, 0)], [(D, 0)]),
    # class b on B but only 40 % of its height: IoU 0.4 with its own class
    "loc": ([([300, 300, 400, 340], 0.9, 1)], ()),
    # class b exactly on A, an object of class a
    "cls": ([(A, 0.9, 1)], ()),
    # class b on a 30 % strip of A: wrong class and IoU 0.3
    "both": ([([0, 0, 100, 30], 0.9, 1)], ()),
    # class b far from every object
    "bkg": ([([600, 600, 700, 700], 0.9, 1)], ()),
    # a third object, of class b, nobody detected
    "miss": ([], [(C, 1)]),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_each_error_type_alone(kind):
    counts, dap = _run(*CASES[kind])
    assert counts == {e: int(e == kind) for e in ERROR_TYPES}
    assert dap[kind] > 0
    assert all(dap[e] == 0 for e in ERROR_TYPES if e != kind)


def test_expected_dap_values():
    # class b: FP at 0.9 then TP at 0.5 -> AP 0.5; fixed -> 1; the mean over 2 classes gains 0.25
    for kind in ("loc", "cls", "both", "bkg"):
        assert _run(*CASES[kind])[1][kind] == pytest.approx(0.25)
    # dupe: class a goes TP, FP, TP -> precision 1 up to recall 0.5, then 2/3
    assert _run(*CASES["dupe"])[1]["dupe"] == pytest.approx((1 - (51 + 50 * 2 / 3) / 101) / 2)
    # miss: class b has 2 objects, 1 found at precision 1 -> AP 51/101; without the miss -> 1
    assert _run(*CASES["miss"])[1]["miss"] == pytest.approx((1 - 51 / 101) / 2)


def test_cls_and_loc_with_a_free_target_cover_it_instead_of_a_miss():
    # Object C (class b) is only hit by a wrong-class box, or by a loose box of its class.
    for kind, det in (("cls", (C, 0.9, 0)), ("loc", ([600, 0, 700, 40], 0.9, 1))):
        counts, dap = _run([det], [(C, 1)])
        assert counts == {e: int(e == kind) for e in ERROR_TYPES}
        assert dap[kind] > 0 and dap["miss"] == 0


def test_loc_takes_precedence_over_cls_like_the_reference_code():
    # IoU 0.4 with its own class (B) and >= 0.5 with another class (a box of class a on B)
    counts, _ = _run([([300, 300, 400, 340], 0.9, 1)], [([300, 300, 400, 345], 0)])
    assert counts["loc"] == 1 and counts["cls"] == 0


def test_baseline_ap_equals_coco_evaluator():
    rng = np.random.default_rng(0)
    k, preds, gts = 3, {}, {}
    ev = COCOEvaluator(num_classes=k)
    for i in range(40):
        m = int(rng.integers(0, 8))
        xy = rng.uniform(0, 200, (m, 2))
        gb = np.concatenate([xy, xy + rng.uniform(5, 60, (m, 2))], 1)
        gc, crowd = rng.integers(0, k, m), rng.uniform(size=m) < 0.1
        n = int(rng.integers(0, 130))  # > 100 per image and class sometimes: COCO's cap acts
        src = rng.integers(0, max(m, 1), n)
        b = (gb[src] if m else rng.uniform(0, 200, (n, 4))) + rng.normal(0, 8, (n, 4))
        b[:, 2:] = np.maximum(b[:, 2:], b[:, :2] + 1)
        s = np.round(rng.uniform(size=n), 2)  # ties on purpose
        c = np.where(rng.uniform(size=n) < 0.8, gc[src] if m else 0, rng.integers(0, k, n))
        preds[i], gts[i] = (b, s, c), (gb, gc, crowd)
        ev.process(i, b, s, c, gb, gc, crowd)
    res = ev.evaluate()
    aps = oracle_ap(classify(to_records(preds, gts), k))
    assert np.array_equal(aps["base"], [res.per_class[c]["ap50"] for c in range(k)])
    assert mean_defined(aps["base"]) == pytest.approx(res.stats["map50"], abs=1e-12)
    # fixing everything of one kind can only help; removing every FP helps most among FP fixes
    base = mean_defined(aps["base"])
    for e in ("dupe", "both", "bkg", "miss"):
        assert mean_defined(aps[e]) >= base
    assert mean_defined(aps["fp"]) >= max(mean_defined(aps[e]) for e in ("dupe", "both", "bkg"))


def test_diagnose_writes_outputs_and_gallery(tmp_path):
    cv2 = pytest.importorskip("cv2")
    img = np.full((800, 800, 3), 40, np.uint8)
    cv2.imwrite(str(tmp_path / "im0.jpg"), img)
    dets = [*BASE_DETS, (D, 0.9, 1), ([0, 0, 100, 30], 0.2, 1)]
    pred = {0: ([d[0] for d in dets], [d[1] for d in dets], [d[2] for d in dets])}
    truth = {0: ([A, B, C], [0, 1, 1]), 1: (np.zeros((0, 4)), [])}
    out = tmp_path / "diag"
    s = diagnose(pred, truth, NAMES, out, images={0: tmp_path / "im0.jpg"}, conf=0.25)
    assert s["counts"] == {"cls": 0, "loc": 0, "both": 1, "dupe": 0, "bkg": 1, "miss": 1}
    assert s["false_positives"] == 2 and s["false_negatives"] == 1
    # at conf 0.25 the 0.2 "both" box is not shown: 1 FP, 1 miss
    assert s["at_conf"]["false_positives"] == 1 and s["at_conf"]["false_negatives"] == 1
    assert [g["missed"] for g in s["gallery"]] == [1]
    for f in [
        "diagnosis.json",
        "diagnosis.png",
        "diagnosis_per_class.csv",
        s["gallery"][0]["file"],
    ]:
        assert (out / f).stat().st_size > 0
    assert json.loads((out / "diagnosis.json").read_text())["counts"] == s["counts"]
    assert s["worst_classes"][0] == "b"
    assert {r["size"]: r["instances"] for r in s["sizes"]} == {"small": 0, "medium": 0, "large": 3}
    assert "Bkg" in format_diagnosis(s)


def test_diagnose_coco_json_matches_in_memory(tmp_path):
    gt = {
        "images": [{"id": "x", "file_name": "x.jpg", "height": 800, "width": 800}],
        "categories": [{"id": 7, "name": "a"}, {"id": 3, "name": "b"}],  # sorted: b=0, a=1
        "annotations": [
            {"id": 1, "image_id": "x", "category_id": 7, "bbox": [0, 0, 100, 100], "area": 1e4},
            {"id": 2, "image_id": "x", "category_id": 3, "bbox": [300, 300, 100, 100]},
            {"id": 3, "image_id": "x", "category_id": 3, "bbox": [500, 500, 90, 90],
             "iscrowd": 1},
        ],
    }  # fmt: skip
    res = [
        {"image_id": "x", "category_id": 7, "bbox": [0, 0, 100, 100], "score": 0.9},
        {"image_id": "x", "category_id": 7, "bbox": [300, 300, 100, 100], "score": 0.8},
        {"image_id": "x", "category_id": 3, "bbox": [510, 510, 50, 50], "score": 0.7},
    ]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(res))
    s = diagnose_coco_json(tmp_path / "gt.json", tmp_path / "pred.json", tmp_path / "d")
    # the category-7 box on the category-3 object is a Cls error; the one inside the crowd
    # region is ignored, not a false positive
    assert s["counts"]["cls"] == 1 and sum(s["counts"].values()) == 1
    assert s["false_positives"] == 1 and s["false_negatives"] == 1  # the Cls target is unmatched
    assert [r["class"] for r in s["per_class"]] == ["b", "a"]


def test_miss_fix_that_leaves_no_ground_truth_counts_as_perfect(tmp_path):
    # one class, its only object missed, one background box: fixing the miss leaves nothing
    s = diagnose({0: ([D], [0.9], [0])}, {0: ([A], [0])}, ["a"], tmp_path, gallery=0)
    assert s["map50"] == 0.0 and s["dap"]["miss"] == 1.0 and s["dap"]["bkg"] == 0.0
    assert s["counts"] == {"cls": 0, "loc": 0, "both": 0, "dupe": 0, "bkg": 1, "miss": 1}
    empty = diagnose({}, {0: (np.zeros((0, 4)), [])}, ["a"], tmp_path / "e", gallery=0)
    assert empty["map50"] == -1.0 and set(empty["dap"].values()) == {0.0}
    assert "undefined" in format_diagnosis(empty)
