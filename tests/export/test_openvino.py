"""``detforge export format=openvino``: an OpenVINO IR built on the ONNX export, checked against
PyTorch like it, and run by ``predict`` / ``val`` through OpenVINO's CPU runtime (issue 16.1).

Tolerances are the export's parity ones: boxes within 0.05 px, scores within 5e-4; the 12 COCO
stats within 1e-4 (as tests/export/test_onnx_val_predict.py).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import onnx
import pytest

from detforge.api import Detector
from detforge.cli.main import main
from detforge.config.fields import ConfigError
from detforge.infer.runtime import OpenVinoModel, load_exported

pytest.importorskip("openvino")

CONF = "conf=0.05"
TOL_BOX, TOL_SCORE, TOL_STAT = 0.05, 5e-4, 1e-4


@pytest.fixture(scope="module")
def exported(spread_checkpoint):
    """(weights, .onnx, .xml) of one checkpoint, both exported at conf=0.05."""
    weights = spread_checkpoint("yolo-n")
    onnx_path, xml = weights.with_name("ov-ref.onnx"), weights.with_name("ov.xml")
    assert main(["export", f"weights={weights}", CONF, f"out={onnx_path}"]) == 0
    assert main(["export", f"weights={weights}", CONF, "format=openvino", f"out={xml}"]) == 0
    return weights, onnx_path, xml


@pytest.mark.parametrize("nms", [False, True])
def test_openvino_export_passes_parity_with_the_onnx_metadata(spread_checkpoint, tmp_path, nms,
                                                              capsys):  # fmt: skip
    weights = spread_checkpoint("yolo-n")
    out = tmp_path / "m.xml"
    rc = main(["export", f"weights={weights}", CONF, "format=openvino", f"nms={str(nms).lower()}",
               f"out={out}"])  # fmt: skip
    assert rc == 0
    assert "-> passed" in capsys.readouterr().out
    report = json.loads((tmp_path / "export_parity.json").read_text())
    assert report["openvino"] == str(out) and report["runtime"] == "OpenVINO"
    assert report["passed"] and report["failures"] == []
    assert report["detections_torch"] > 20
    assert report["matched"] >= 0.95 * report["detections_torch"]
    assert report["raw_max_score_diff"] <= TOL_SCORE and report["raw_max_box_diff"] <= TOL_BOX
    # the IR pair and the report only: no temporary ONNX or IR left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export_parity.json", "m.bin", "m.xml"]

    # the same metadata as the ONNX file of the same export, read back from the IR's rt_info
    ref = tmp_path / "ref.onnx"
    assert main(["export", f"weights={weights}", CONF, f"nms={str(nms).lower()}",
                 f"out={ref}"]) == 0  # fmt: skip
    meta = {p.key[len("detforge.") :]: p.value for p in onnx.load(str(ref)).metadata_props}
    rt = load_exported(out)
    assert isinstance(rt, OpenVinoModel)
    assert rt.metadata == meta
    assert rt.nms is nms and rt.imgsz == 64 and rt.strides == (8, 16, 32)
    assert json.loads(rt.metadata["letterbox"])["pad_value"] == 114


def _pair(a, b) -> None:
    """Every detection of prediction ``a`` has a distinct partner in ``b`` and vice versa."""
    assert len(a.boxes) == len(b.boxes)
    used = np.zeros(len(b.boxes), bool)
    for box, s, c in zip(a.boxes, a.scores, a.classes, strict=True):
        ok = ~used & (b.classes == c) & (np.abs(b.scores - s) <= TOL_SCORE)
        ok &= np.abs(b.boxes - box).max(1) <= TOL_BOX
        assert ok.any(), f"class {c} score {s} box {box} has no partner"
        used[np.flatnonzero(ok)[0]] = True


def test_predict_through_the_xml_equals_the_onnx_path(exported, tiny_data):
    _, onnx_path, xml = exported
    files = sorted((tiny_data.parent / "images" / "val").glob("*.jpg"))
    ov_det, ort_det = Detector.load(xml), Detector.load(onnx_path)
    assert isinstance(ov_det.model, OpenVinoModel)
    for rect in (True, False):
        got = ov_det.predict(files, conf=0.05, batch=3, rect=rect)
        ref = ort_det.predict(files, conf=0.05, batch=3, rect=rect)
        assert sum(len(p.boxes) for p in ref) > 20
        for g, r in zip(got, ref, strict=True):
            _pair(g, r)


def test_predict_and_val_commands_take_the_xml(exported, tiny_data, tmp_path, capsys):
    _, onnx_path, xml = exported
    stats = {}
    for w in (onnx_path, xml):
        name = w.suffix[1:]
        assert main(["val", f"weights={w}", f"data={tiny_data}", f"project={tmp_path}",
                     f"name={name}", "workers=0", "train.progress=false", "eval.report=false",
                     "eval.conf=0.05", "--json"]) == 0  # fmt: skip
        stats[name] = json.loads(capsys.readouterr().out)["stats"]
    assert len(stats["xml"]) == 12 and stats["xml"].keys() == stats["onnx"].keys()
    for k, v in stats["onnx"].items():
        assert abs(stats["xml"][k] - v) <= TOL_STAT, k

    source = tiny_data.parent / "images" / "val"
    preds = {}
    for w in (onnx_path, xml):
        name = "p" + w.suffix[1:]
        assert main(["predict", f"weights={w}", f"source={source}", f"project={tmp_path}",
                     f"name={name}", CONF]) == 0  # fmt: skip
        preds[name] = json.loads((tmp_path / name / "predictions.json").read_text())
    assert len(preds["ponnx"]) > 10 and len(preds["pxml"]) == len(preds["ponnx"])
    for p in preds["ponnx"]:  # each detection of the ONNX run has its twin in OpenVINO's
        assert any(q["output_name"] == p["output_name"] and q["category_id"] == p["category_id"]
                   and abs(q["score"] - p["score"]) <= TOL_SCORE
                   and np.abs(np.subtract(q["bbox"], p["bbox"])).max() <= TOL_BOX * 10
                   for q in preds["pxml"]), p  # fmt: skip


def test_a_failed_parity_check_keeps_the_ir_under_a_failed_name(spread_checkpoint, tmp_path,
                                                                 monkeypatch, capsys):  # fmt: skip
    real_run = OpenVinoModel.run

    def skewed(self, x, *a, **k):  # a conversion bug that shifts the class scores
        out = real_run(self, x, *a, **k)
        out["scores"] = out["scores"] + 0.01
        return out

    monkeypatch.setattr(OpenVinoModel, "run", skewed)
    out = tmp_path / "broken.xml"
    rc = main(["export", f"weights={spread_checkpoint('yolo-n')}", CONF, "format=openvino",
               f"out={out}"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "parity check failed" in err and "raw scores" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "broken.parity-failed.bin", "broken.parity-failed.xml", "export_parity.json"
    ]  # fmt: skip
    assert json.loads((tmp_path / "export_parity.json").read_text())["passed"] is False


def test_a_missing_openvino_names_the_extra(spread_checkpoint, exported, tmp_path, monkeypatch,
                                            capsys):  # fmt: skip
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "openvino" else real(n, *a)
    )
    out = tmp_path / "m.xml"
    rc = main(["export", f"weights={spread_checkpoint('yolo-n')}", "format=openvino", f"out={out}"])
    assert rc == 2
    assert (
        "format=openvino needs openvino: pip install 'detforge[openvino]'"
        in capsys.readouterr().err
    )
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    with pytest.raises(ConfigError, match=r"needs openvino: pip install 'detforge\[openvino\]'"):
        Detector.load(exported[2])


def test_out_must_name_an_xml(spread_checkpoint, tmp_path, capsys):
    rc = main(["export", f"weights={spread_checkpoint('yolo-n')}", "format=openvino",
               f"out={tmp_path / 'm.onnx'}"])  # fmt: skip
    assert rc == 2 and "must end in .xml" in capsys.readouterr().err
