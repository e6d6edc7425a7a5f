"""``detforge benchmark``: figures per format and size, as a table or json (issue 16.3)."""

from __future__ import annotations

import json

from detforge.cli.main import main


def test_benchmark_reports_latency_throughput_and_map_per_format(spread_checkpoint, tiny_data,
                                                                  capsys):  # fmt: skip
    weights = spread_checkpoint("yolo-n")
    capsys.readouterr()  # the fixture's training output
    args = ["benchmark", f"weights={weights}", "imgsz=64,96", "runs=3", "warmup=1", "conf=0.05",
            "precision=fp32"]  # fmt: skip
    assert main([*args, f"data={tiny_data}", "eval.conf=0.05", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["format"], r["imgsz"]) for r in rows] == [
        ("torch", 64), ("onnx", 64), ("torch", 96), ("onnx", 96),
    ]  # fmt: skip
    for r in rows:
        assert r["runs"] == 3 and r["median_ms"] > 0 and r["p90_ms"] >= r["median_ms"]
        assert r["warmup_ms"] > 0 and r["images_per_s_b8"] > 0
        assert r["map50_95"] is not None and r["map50"] is not None
    for torch_row, onnx_row in (rows[0:2], rows[2:4]):  # the same model scores the same
        assert abs(torch_row["map50_95"] - onnx_row["map50_95"]) <= 1e-4

    assert main([*args[:2], "formats=torch", "runs=2", "warmup=1", "precision=fp32"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:6] == ["format", "prec", "imgsz", "warm-up", "ms", "median"]
    assert len(table) == 2 and table[1].split()[:3] == ["torch", "fp32", "64"]
    assert "mAP50" in table[0] and len(table[1].split()) == 7  # no data=: no mAP columns


def test_benchmark_rejects_unknown_formats(spread_checkpoint, capsys):
    capsys.readouterr()
    assert main(["benchmark", f"weights={spread_checkpoint('yolo-n')}", "formats=tflite"]) == 2
    assert "formats must be torch and/or onnx" in capsys.readouterr().err
