"""bench/converge.py: the issue-12 ratios from two accuracy-against-time curves."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def converge():
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("converge", BENCH / "converge.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["converge"] = mod
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        del sys.modules["converge"]
        sys.modules.pop("train_compare", None)
        sys.path.remove(str(BENCH))


def curve(*points):
    return [{"epoch": e, "train_seconds": s, "map50_95": m} for e, s, m in points]


def test_ratios_use_the_first_checkpoint_that_reaches_the_peers_final(converge):
    ours = curve((5, 100.0, 0.05), (10, 200.0, 0.12), (15, 300.0, 0.11), (20, 400.0, 0.15))
    # the peer peaks before its last point: its own time to its final value is the first reach
    peer = curve((5, 300.0, 0.02), (10, 600.0, 0.11), (15, 900.0, 0.09), (20, 1200.0, 0.10))
    s = converge.summarize(ours, peer)
    assert s["final_map50_95_ratio"] == pytest.approx(1.5)
    assert s["ours_reaches_peer_final"]["epoch"] == 10
    assert s["peer_reaches_own_final"]["epoch"] == 10
    assert s["time_to_peer_final_ratio"] == pytest.approx(200.0 / 600.0)


def test_a_curve_that_never_reaches_the_target_has_no_time_ratio(converge):
    ours = curve((5, 100.0, 0.01), (10, 200.0, 0.02))
    peer = curve((5, 300.0, 0.05), (10, 600.0, 0.08))
    s = converge.summarize(ours, peer)
    assert s["ours_reaches_peer_final"] is None and s["time_to_peer_final_ratio"] is None
    assert "n/a (never reached)" in converge.table({"ours": ours, "peer": peer}, s)


def test_every_must_divide_epochs(converge, capsys):
    with pytest.raises(SystemExit):
        converge.parse_args(["--data", "d.yaml", "--out", "o", "--epochs", "10", "--every", "3"])
    assert "--every must divide --epochs" in capsys.readouterr().err


def test_peer_threads_reach_the_peer_command_and_its_label(converge, tmp_path):
    base = ["--data", "d.yaml", "--out", str(tmp_path), "--every", "5"]
    default = converge.peer_system(converge.parse_args(base))
    assert default.label == "peer-yolo11n" and default.overrides == ["--save-every=5"]
    two = converge.peer_system(converge.parse_args([*base, "--peer-threads", "2"]))
    assert two.label == "peer-yolo11n-2threads"
    assert two.overrides == ["--threads=2", "--save-every=5"]
