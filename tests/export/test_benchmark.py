"""``detforge benchmark``: figures per format and size, as a table or json (issue 16.3)."""

from __future__ import annotations

import json

import pytest

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
    assert "formats must be among torch, onnx, openvino" in capsys.readouterr().err


def test_benchmark_times_and_scores_the_openvino_ir(spread_checkpoint, tiny_data, capsys):
    pytest.importorskip("openvino")
    weights = spread_checkpoint("yolo-n")
    capsys.readouterr()
    args = [
        "benchmark",
        f"weights={weights}",
        "imgsz=64",
        "runs=2",
        "warmup=1",
        "conf=0.05",
        "precision=fp32",
        "formats=torch,openvino",
        f"data={tiny_data}",
        "eval.conf=0.05",
    ]
    assert main([*args, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["format"], r["precision"]) for r in rows] == [
        ("torch", "fp32"), ("openvino", "fp32"),
    ]  # fmt: skip
    assert rows[1]["median_ms"] > 0 and rows[1]["images_per_s_b8"] > 0
    assert abs(rows[0]["map50_95"] - rows[1]["map50_95"]) <= 1e-4  # the same model, the same score


def test_time_per_image_leaves_warm_up_calls_out_of_the_statistics(monkeypatch):
    from detforge.export import benchmark

    durations = iter([0.5, 0.2] + [0.01 * k for k in range(1, 11)])  # 2 warm-up calls, 10 timed
    clock = [0.0]

    def perf_counter():
        return clock[0]

    def predict_one(img):
        seen.append(img)
        clock[0] += next(durations)

    seen: list[int] = []
    monkeypatch.setattr(benchmark.time, "perf_counter", perf_counter)
    stats = benchmark.time_per_image(predict_one, [0, 1, 2], warmup=2, runs=10)
    assert seen == [i % 3 for i in range(12)]  # cycles through the images
    assert stats.first_ms == 500 and stats.warmup_ms == pytest.approx([500, 200])
    assert stats.runs == 10
    assert stats.median_ms == pytest.approx(55) and stats.p90_ms == pytest.approx(91)
    with pytest.raises(ValueError, match="runs: expected at least 1"):
        benchmark.time_per_image(predict_one, [0], warmup=0, runs=0)
