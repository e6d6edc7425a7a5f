"""``detforge export``: ONNX files checked against PyTorch on real images (issue 16.1)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from detforge.cli.main import main
from detforge.engine.checkpoint import load_checkpoint, model_from_checkpoint
from detforge.export.parity import letterboxed_batch
from detforge.infer.postprocess import postprocess
from detforge.infer.runtime import OnnxRuntimeModel
from detforge.models.decode import decode

CONF = "conf=0.05"


def _export(weights, *args) -> tuple[int, dict]:
    rc = main(["export", f"weights={weights}", CONF, *args])
    report = json.loads((weights.parent / "export_parity.json").read_text())
    return rc, report


@pytest.mark.parametrize("name", ["yolo-n", "yolo-n-p2"])
@pytest.mark.parametrize("nms", [False, True])
def test_export_passes_parity_and_runs_batches_of_1_and_3(spread_checkpoint, tiny_data, name,
                                                          nms, capsys):  # fmt: skip
    weights = spread_checkpoint(name)
    rc, report = _export(weights, f"nms={str(nms).lower()}")
    assert rc == 0
    assert "-> passed" in capsys.readouterr().out
    assert report["passed"] and report["failures"] == []
    assert len(report["images"]) == 8 and report["batch"] == 4
    assert report["detections_torch"] > 20
    # distinct scores: (nearly) every detection pairs up, none left to rounding
    assert report["matched"] >= 0.95 * report["detections_torch"]
    assert report["raw_max_score_diff"] <= 5e-4 and report["raw_max_box_diff"] <= 0.05

    path = weights.with_suffix(".onnx")
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    ckpt = load_checkpoint(weights)
    assert json.loads(meta["detforge.names"]) == list(ckpt["names"])
    assert meta["detforge.imgsz"] == "64" and meta["detforge.nms"] == str(nms).lower()
    assert json.loads(meta["detforge.strides"]) == ([4, 8, 16, 32] if "p2" in name else [8, 16, 32])
    assert json.loads(meta["detforge.letterbox"])["pad_value"] == 114

    # the same file at batch 1 and batch 3 gives PyTorch's detections
    model = model_from_checkpoint(ckpt, str(weights)).eval()
    rt = OnnxRuntimeModel(path)
    files = sorted((tiny_data.parent / "images" / "val").glob("*.jpg"))[:3]
    x = letterboxed_batch(files, 64)
    with torch.no_grad():
        ref = postprocess(*decode(model(x), model.strides, model.reg_max), 0.05, 0.7, 300)
    for xb, refs in ((x[:1], ref[:1]), (x, ref)):
        got = rt.detect(xb, 0.05, 0.7, 300)
        assert len(got) == len(refs)
        for g, r in zip(got, refs, strict=True):
            assert len(g) == len(r) > 0
            np.testing.assert_array_equal(g.classes.numpy(), r.classes.numpy())
            np.testing.assert_allclose(g.boxes.numpy(), r.boxes.numpy(), atol=0.05)
            np.testing.assert_allclose(g.scores.numpy(), r.scores.numpy(), atol=5e-4)


def test_nms_in_the_graph_equals_detforge_nms_on_the_same_outputs(spread_checkpoint, tiny_data,
                                                                   tmp_path):  # fmt: skip
    weights = spread_checkpoint("yolo-n")
    for nms in ("false", "true"):
        assert main(["export", f"weights={weights}", CONF, f"nms={nms}",
                     f"out={tmp_path / f'nms-{nms}.onnx'}"]) == 0  # fmt: skip
    plain, graph = (OnnxRuntimeModel(tmp_path / f"nms-{n}.onnx") for n in ("false", "true"))
    files = sorted((tiny_data.parent / "images" / "val").glob("*.jpg"))
    x = letterboxed_batch(files, 64)
    for conf, iou, max_det in ((0.05, 0.7, 300), (0.02, 0.45, 5)):
        a, b = plain.detect(x, conf, iou, max_det), graph.detect(x, conf, iou, max_det)
        assert sum(map(len, a)) > 0
        assert max(map(len, b)) <= max_det  # the per-image cap acts inside the graph
        for da, db in zip(a, b, strict=True):
            np.testing.assert_array_equal(db.classes.numpy(), da.classes.numpy())
            np.testing.assert_allclose(db.boxes.numpy(), da.boxes.numpy(), atol=1e-5)
            np.testing.assert_allclose(db.scores.numpy(), da.scores.numpy(), atol=1e-6)


def test_a_failed_parity_check_fails_the_export(spread_checkpoint, monkeypatch, capsys):
    weights = spread_checkpoint("yolo-n")
    real_run = OnnxRuntimeModel.run

    def skewed(self, x, *a, **k):  # an exporter bug that shifts the class scores
        out = real_run(self, x, *a, **k)
        out["scores"] = out["scores"] + 0.01
        return out

    monkeypatch.setattr(OnnxRuntimeModel, "run", skewed)
    target = weights.with_name("broken.onnx")
    rc = main(["export", f"weights={weights}", CONF, f"out={target}"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and "parity check failed" in err and "raw scores" in err
    assert not target.exists()
    assert weights.with_name("broken.parity-failed.onnx").is_file()
    report = json.loads((weights.parent / "export_parity.json").read_text())
    assert report["passed"] is False and report["raw_max_score_diff"] == pytest.approx(0.01, 1e-3)


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("half=true", "cannot be parity-checked on the CPU"),
        ("opset=10", "opset must be at least 11"),
        ("format=tflite", "format must be onnx"),
    ],
)
def test_settings_that_cannot_act_are_rejected(spread_checkpoint, arg, message, capsys):
    assert main(["export", f"weights={spread_checkpoint('yolo-n')}", arg]) == 2
    assert message in capsys.readouterr().err


def test_simplify_needs_a_simplifier_and_keeps_parity(spread_checkpoint, monkeypatch, capsys,
                                                      tmp_path):  # fmt: skip
    import importlib.util

    weights = spread_checkpoint("yolo-n")
    out = tmp_path / "slim.onnx"
    if importlib.util.find_spec("onnxslim"):
        assert main(["export", f"weights={weights}", CONF, "simplify=true", f"out={out}"]) == 0
        assert OnnxRuntimeModel(out).names == load_checkpoint(weights)["names"]
    real = importlib.util.find_spec
    hidden = ("onnxslim", "onnxsim")
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n in hidden else real(n, *a)
    )
    assert main(["export", f"weights={weights}", "simplify=true", f"out={out}.2"]) == 2
    assert "simplify=true needs onnxslim or onnxsim" in capsys.readouterr().err


def test_onnxruntime_threads_sleep_when_idle(spread_checkpoint, tmp_path):
    # spinning workers stall inference when another process keeps a core busy
    out = tmp_path / "m.onnx"
    assert main(["export", f"weights={spread_checkpoint('yolo-n')}", f"out={out}"]) == 0
    options = OnnxRuntimeModel(out).session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_a_fixed_size_export_runs_any_batch_and_names_a_wrong_size(spread_checkpoint, tiny_data,
                                                                   tmp_path):  # fmt: skip
    from detforge.config.fields import ConfigError

    weights = spread_checkpoint("yolo-n")
    out = tmp_path / "fixed.onnx"
    assert main(["export", f"weights={weights}", CONF, "dynamic=false", f"out={out}"]) == 0
    rt = OnnxRuntimeModel(out)
    assert rt.session.get_inputs()[0].shape == [1, 3, 64, 64]
    files = sorted((tiny_data.parent / "images" / "val").glob("*.jpg"))[:3]
    x = letterboxed_batch(files, 64)
    together = rt.detect(x, 0.05, 0.7, 300)  # run one image at a time inside
    for i in range(3):
        alone = rt.detect(x[i : i + 1], 0.05, 0.7, 300)[0]
        np.testing.assert_array_equal(together[i].boxes.numpy(), alone.boxes.numpy())
    with pytest.raises(ConfigError, match="takes 64x64 images, got 96x64"):
        rt.detect(torch.zeros(1, 3, 96, 64), 0.05, 0.7, 300)
    assert main(["export", f"weights={weights}", f"out={tmp_path / 'model.bin'}"]) == 2


def test_an_export_that_stops_on_the_way_leaves_no_temp_file(spread_checkpoint, tmp_path,
                                                              monkeypatch, capsys):  # fmt: skip
    from detforge.config.fields import ConfigError
    from detforge.export import onnx as export_onnx

    def no_images(cfg, n):
        raise ConfigError("the val split has no images for the parity check: give source=")

    monkeypatch.setattr(export_onnx, "parity_images", no_images)
    out = tmp_path / "m.onnx"
    assert main(["export", f"weights={spread_checkpoint('yolo-n')}", f"out={out}"]) == 2
    assert "no images for the parity check" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
