"""``predict.precision``: bf16 autocast when asked (same detections within bf16 rounding) and by
default (auto) only on CPUs with fast bf16, an unsupported precision named by its setting;
benchmark times and scores each precision asked for."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from detforge.api import Detector
from detforge.cli.main import main
from detforge.infer.device import cpu_has_fast_bf16


def _scores(run) -> list[float]:
    return sorted(r["score"] for r in json.loads((run / "predictions.json").read_text()))


def test_predict_runs_in_the_precision_asked_for(spread_checkpoint, tiny_data, tmp_path, capsys):
    weights = spread_checkpoint("yolo-n")
    images = tiny_data.parent / "images" / "val"
    base = ["predict", f"weights={weights}", f"source={images}", "conf=0.05",
            f"project={tmp_path}", "device=cpu"]  # fmt: skip
    assert main([*base, "name=fp32", "precision=fp32"]) == 0
    assert main([*base, "name=bf16", "precision=bf16"]) == 0
    assert main([*base, "name=default"]) == 0
    fp32, bf16 = _scores(tmp_path / "fp32"), _scores(tmp_path / "bf16")
    assert fp32 and fp32 != bf16  # bf16 rounding shows in the scores ...
    assert len(fp32) == pytest.approx(len(bf16), rel=0.2)  # ... of about the same detections
    assert _scores(tmp_path / "default") == (bf16 if cpu_has_fast_bf16() else fp32)
    assert main([*base, "name=fp16", "precision=fp16"]) == 2
    err = capsys.readouterr().err
    assert "predict.precision: fp16 autocast is not supported on CPU" in err
    assert not (tmp_path / "fp16").exists()


def test_detector_autocasts_only_when_asked(spread_checkpoint) -> None:
    weights = spread_checkpoint("yolo-n")
    seen = {}
    for amp in ("fp32", "bf16", "auto"):
        det = Detector.load(weights, device="cpu", imgsz=64, amp=amp)
        forward = det.model.forward

        def spy(x, forward=forward, amp=amp):
            seen[amp] = torch.is_autocast_enabled("cpu")
            return forward(x)

        det.model.forward = spy
        det.predict(np.zeros((64, 64, 3), np.uint8))
    assert seen == {"fp32": False, "bf16": True, "auto": cpu_has_fast_bf16()}


def test_benchmark_times_and_scores_each_precision(spread_checkpoint, tiny_data, capsys):
    weights = spread_checkpoint("yolo-n")
    capsys.readouterr()
    args = ["benchmark", f"weights={weights}", "imgsz=64", "runs=2", "warmup=1", "conf=0.05",
            "precision=fp32,bf16", f"data={tiny_data}", "eval.conf=0.05", "--json"]  # fmt: skip
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["format"], r["precision"]) for r in rows] == [
        ("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32"),
    ]  # fmt: skip
    fp32, bf16, onnx = (r["map50_95"] for r in rows)
    assert abs(fp32 - onnx) <= 1e-4  # the fp32 row is scored in fp32, as onnxruntime runs
    assert main([*args[:2], "precision=int8"]) == 2
    assert "precision must be fp32, bf16, fp16 and/or auto" in capsys.readouterr().err
