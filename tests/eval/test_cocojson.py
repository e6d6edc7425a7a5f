"""COCO json reading (errors a user can act on), writing, and the stats table."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from detforge.data.cocofmt import COCOJsonError, coco_gt_from_labels
from detforge.eval.coco import COCOEvaluator
from detforge.eval.cocojson import (
    coco_predictions,
    evaluate_coco,
    evaluate_coco_json,
    format_stats_table,
)
from detforge.utils.atomic import write_json_atomic


def _gt() -> dict:
    return {
        "images": [{"id": "a", "width": 100, "height": 100}, {"id": "b", "width": 9, "height": 9}],
        "annotations": [
            {"id": 1, "image_id": "a", "category_id": 3, "bbox": [10, 10, 20, 20], "area": 400,
             "iscrowd": 0},
            {"id": 2, "image_id": "b", "category_id": 7, "bbox": [0, 0, 5, 5], "area": 25,
             "iscrowd": 0},
        ],
        "categories": [{"id": 3, "name": "x"}, {"id": 7, "name": "y"}],
    }  # fmt: skip


def _preds() -> list[dict]:
    return [
        {"image_id": "a", "category_id": 3, "bbox": [10, 10, 20, 20], "score": 0.9},
        {"image_id": "b", "category_id": 7, "bbox": [50, 50, 5, 5], "score": 0.8},
        {"image_id": "b", "category_id": 3, "bbox": [0, 0, 5, 5], "score": 0.7},
    ]


def _write(tmp_path: Path, gt=None, preds=None) -> tuple[Path, Path]:
    g, p = tmp_path / "gt.json", tmp_path / "pred.json"
    g.write_text(json.dumps(_gt() if gt is None else gt))
    p.write_text(json.dumps(_preds() if preds is None else preds))
    return g, p


def test_string_ids_and_category_ids_kept(tmp_path):
    res = evaluate_coco_json(*_write(tmp_path))
    assert res.class_ids == [3, 7] and set(res.per_class) == {3, 7}
    assert res.per_class[3]["num_gt"] == 1 and res.per_class[7]["ap50"] == 0.0


def test_missing_file(tmp_path):
    g, _ = _write(tmp_path)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        evaluate_coco_json(g, tmp_path / "nope.json")


def test_invalid_json(tmp_path):
    g, p = _write(tmp_path)
    p.write_text('[{"image_id": "a",\n "score": }]')
    with pytest.raises(COCOJsonError, match=r"pred\.json is not valid json.*line 2"):
        evaluate_coco_json(g, p)


@pytest.mark.parametrize("key", ["image_id", "category_id", "bbox", "score"])
def test_missing_key_in_prediction(tmp_path, key):
    preds = _preds()
    del preds[2][key]
    with pytest.raises(COCOJsonError, match=rf"predictions\[2\] has no '{key}' key"):
        evaluate_coco_json(*_write(tmp_path, preds=preds))


def test_missing_keys_in_ground_truth(tmp_path):
    gt = _gt()
    del gt["annotations"][1]["bbox"]
    with pytest.raises(COCOJsonError, match=r"annotations\[1\] has no 'bbox' key"):
        evaluate_coco_json(*_write(tmp_path, gt=gt))
    gt = _gt()
    del gt["categories"]
    with pytest.raises(COCOJsonError, match="no 'categories' key"):
        evaluate_coco_json(*_write(tmp_path, gt=gt))


def test_unknown_image_and_category(tmp_path):
    preds = _preds() + [{"image_id": "zz", "category_id": 3, "bbox": [0, 0, 1, 1], "score": 0.1}]
    with pytest.raises(COCOJsonError, match=r"predictions\[3\] has image_id 'zz'"):
        evaluate_coco_json(*_write(tmp_path, preds=preds))
    preds = _preds()
    preds[1]["category_id"] = 5
    with pytest.raises(COCOJsonError, match=r"predictions\[1\] has category_id 5.*categories"):
        evaluate_coco_json(*_write(tmp_path, preds=preds))
    gt = _gt()
    gt["annotations"][0]["image_id"] = 12
    with pytest.raises(COCOJsonError, match=r"annotations\[0\] has image_id 12"):
        evaluate_coco_json(*_write(tmp_path, gt=gt))


def test_malformed_bbox_and_types(tmp_path):
    preds = _preds()
    preds[1]["bbox"] = [1, 2, 3]
    with pytest.raises(COCOJsonError, match=r"predictions\[1\]\['bbox'\]"):
        evaluate_coco_json(*_write(tmp_path, preds=preds))
    with pytest.raises(COCOJsonError, match="json list"):
        evaluate_coco_json(*_write(tmp_path, preds={"annotations": []}))


def test_duplicate_image_and_non_finite_box(tmp_path):
    gt = _gt()
    gt["images"].append({"id": "a"})
    with pytest.raises(COCOJsonError, match="image id 'a' more than once"):
        evaluate_coco_json(*_write(tmp_path, gt=gt))
    preds = _preds()
    preds[2]["bbox"] = [0, 0, float("nan"), 3]
    with pytest.raises(COCOJsonError, match=r"predictions\[2\]\['bbox'\] is not finite"):
        evaluate_coco(_gt(), preds)


def test_empty_prediction_list(tmp_path):
    res = evaluate_coco_json(*_write(tmp_path, preds=[]))
    assert res.stats["map50_95"] == 0.0 and res.stats["ar100"] == 0.0


def _labels_case(seed: int):
    """Images, labels (n, 5) [cls, xyxy] and predictions per image, float32 like a model's."""
    rng = np.random.default_rng(seed)
    images, labels, preds = [], [], []
    for i in range(6):
        images.append({"id": i, "file_name": f"{i}.jpg", "height": 300, "width": 400})
        n = int(rng.integers(0, 6))
        xy = rng.uniform(0, 250, (n, 2))
        b = np.concatenate([xy, xy + rng.uniform(2, 120, (n, 2))], axis=1)
        labels.append(np.concatenate([rng.integers(0, 3, (n, 1)), b], axis=1).astype(np.float32))
        m = int(rng.integers(0, 8))
        near = b[rng.integers(0, n, m)] if n else np.tile([10.0, 10, 60, 60], (m, 1))
        pb = near + rng.normal(0, 4, (m, 4))  # jittered copies of the labels
        preds.append(
            (torch.tensor(pb, dtype=torch.float32), torch.rand(m), torch.randint(0, 3, (m,)))
        )
    return images, labels, preds


def test_writers_round_trip_exactly(tmp_path, pycoco):
    """Direct evaluator == our json files scored by us == the same files scored by pycocotools."""
    images, labels, preds = _labels_case(0)
    gt = coco_gt_from_labels(images, labels, ["a", "b", "c"])
    dets = coco_predictions([im["id"] for im in images], *zip(*preds, strict=True))
    assert [c["id"] for c in gt["categories"]] == [1, 2, 3]
    assert {d["category_id"] for d in dets} <= {1, 2, 3}
    write_json_atomic(tmp_path / "gt.json", gt)
    write_json_atomic(tmp_path / "dt.json", dets)
    from_files = evaluate_coco_json(tmp_path / "gt.json", tmp_path / "dt.json")

    ev = COCOEvaluator(num_classes=3)
    for im, lab, (b, s, c) in zip(images, labels, preds, strict=True):
        ev.process(im["id"], b, s, c, lab[:, 1:], lab[:, 0])
    direct = ev.evaluate()
    e = pycoco(
        json.loads((tmp_path / "gt.json").read_text()),
        json.loads((tmp_path / "dt.json").read_text()),
    )
    assert direct.stats_array().tolist() == from_files.stats_array().tolist() == list(e.stats)
    assert np.array_equal(direct.precision, e.eval["precision"])


def test_format_stats_table_matches_pycocotools(pycoco):
    gt, dets = _gt(), _preds()
    e = pycoco(gt, dets)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        e.summarize()
    want = [ln for ln in out.getvalue().splitlines() if ln.startswith(" Average")]
    assert format_stats_table(evaluate_coco(gt, dets).stats).splitlines() == want


def test_write_json_atomic(tmp_path):
    p = tmp_path / "sub" / "out.json"
    write_json_atomic(p, {"a": np.float32(0.5), "b": np.arange(3), "c": np.int64(2)})
    assert json.loads(p.read_text()) == {"a": 0.5, "b": [0, 1, 2], "c": 2}
    with pytest.raises(TypeError):
        write_json_atomic(p, {"bad": object()})
    # The failed write left the previous file whole and no temporary file behind.
    assert json.loads(p.read_text())["c"] == 2
    assert [f.name for f in p.parent.iterdir()] == ["out.json"]
