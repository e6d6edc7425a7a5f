"""``val`` and ``predict`` on an exported .onnx give PyTorch's results (issue 16.2).

Tolerance: the 12 COCO stats within 1e-4 (absolute); every detection paired with one of the same
class, box within 0.05 px and score within 5e-4 (the export's parity tolerances).

Scored at conf=0.05: the test model's outputs hardly depend on the image, and at the default
eval.conf=0.001 its many image-sized boxes overlap near the NMS threshold, where float rounding
(1e-7 here) decides which of two boxes survives; the same post-processing code runs on both.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from detforge.cli.main import main

TOL_STAT, TOL_BOX, TOL_SCORE = 1e-4, 0.05, 5e-4


def _pair(a: list[tuple[int, float, np.ndarray]], b: list[tuple[int, float, np.ndarray]]) -> None:
    """Every (class, score, box) of ``a`` has a distinct partner in ``b`` and vice versa."""
    assert len(a) == len(b)
    used = [False] * len(b)
    for c, s, box in a:
        j = next(
            (j for j, (c2, s2, box2) in enumerate(b) if not used[j] and c2 == c
             and abs(s2 - s) <= TOL_SCORE and np.abs(box2 - box).max() <= TOL_BOX),
            None,
        )  # fmt: skip
        assert j is not None, f"class {c} score {s} box {box} has no partner"
        used[j] = True


@pytest.fixture(scope="module")
def exported(spread_checkpoint):
    weights = spread_checkpoint("yolo-n")
    onnx_path = weights.with_name("val-test.onnx")
    assert main(["export", f"weights={weights}", "conf=0.05", f"out={onnx_path}"]) == 0
    return weights, onnx_path


def test_val_on_onnx_gives_the_stats_and_predictions_of_the_checkpoint(
    exported, tiny_data, tmp_path, capsys
):
    weights, onnx_path = exported
    results = {}
    for w in (weights, onnx_path):
        name = w.suffix[1:]
        rc = main(["val", f"weights={w}", f"data={tiny_data}", f"project={tmp_path}",
                   f"name={name}", "workers=0", "train.progress=false", "eval.report=false",
                   "eval.save_json=true", "eval.conf=0.05", "--json"])  # fmt: skip
        assert rc == 0
        stats = json.loads(capsys.readouterr().out)["stats"]
        preds = json.loads((tmp_path / name / "val_predictions.json").read_text())
        results[name] = stats, preds
    (s_pt, p_pt), (s_onnx, p_onnx) = results["pt"], results["onnx"]
    assert len(s_pt) == 12 and s_pt.keys() == s_onnx.keys()
    for k in s_pt:
        assert abs(s_pt[k] - s_onnx[k]) <= TOL_STAT, k
    assert len(p_pt) > 50

    def rows(preds):
        return [(p["image_id"] * 1000 + p["category_id"], p["score"], np.array(p["bbox"]))
                for p in preds]  # fmt: skip

    _pair(rows(p_pt), rows(p_onnx))


def test_predict_on_onnx_writes_the_boxes_of_the_checkpoint(exported, tiny_data, tmp_path):
    weights, onnx_path = exported
    source = tiny_data.parent / "images" / "val"
    for w in (weights, onnx_path):
        rc = main(["predict", f"weights={w}", f"source={source}", f"project={tmp_path}",
                   f"name={w.suffix[1:]}", "conf=0.05", "precision=fp32"])  # fmt: skip
        assert rc == 0
    pt, ox = (json.loads((tmp_path / n / "predictions.json").read_text()) for n in ("pt", "onnx"))
    assert len(pt) > 10

    def rows(preds):
        return [(hash((p["output_name"], p["category_id"])), p["score"], np.array(p["bbox"]))
                for p in preds]  # fmt: skip

    _pair(rows(pt), rows(ox))
    labels = sorted((tmp_path / "onnx" / "labels").glob("*.txt"))
    assert len(labels) == 8


def test_onnx_weights_refuse_what_they_cannot_do(exported, tiny_data, tmp_path, capsys):
    weights, onnx_path = exported
    assert main(["val", f"weights={onnx_path}", f"project={tmp_path}"]) == 2
    assert "holds no data settings: give data=data.yaml" in capsys.readouterr().err
    source = tiny_data.parent / "images" / "val"
    args = [f"source={source}", f"project={tmp_path}"]
    assert main(["predict", f"weights={onnx_path},{onnx_path}", *args]) == 2
    assert "ensembles need PyTorch weights" in capsys.readouterr().err
    assert main(["predict", f"weights={onnx_path}", "augment=true", *args]) == 2
    assert "test-time augmentation and ensembles need PyTorch weights" in capsys.readouterr().err


def test_detector_threads_set_onnxruntimes_thread_count(exported):
    from detforge.api import Detector

    _, onnx_path = exported
    image = np.zeros((64, 64, 3), np.uint8)
    for threads, want in ((1, 1), (2, 2), (None, 0), (0, 0)):  # 0: onnxruntime's own (per core)
        det = Detector.load(onnx_path, threads=threads)
        assert det.model.session.get_session_options().intra_op_num_threads == want
        assert len(det.predict(image, conf=0.05)) == 1
