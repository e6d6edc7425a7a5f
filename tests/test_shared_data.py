"""Where the shared data is, and what its absence or a missing piece does to the tests that need
it (tests/conftest.py): they find it through DETFORGE_SHARED, skip only when the whole folder is
absent, and fail (never skip) when it exists but a file or pycocotools is missing. Each case runs
a few real tests in a child pytest."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_BENCH_TESTS = "tests/eval/test_coco_evaluator.py::test_shared_benchmarks_match_pycocotools"


def _pytest(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[dict[str, int], str]:
    """Run pytest in a child process; return ({outcome: count}, output)."""
    full_env = {k: v for k, v in os.environ.items() if k != "DETFORGE_SHARED"} | env
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *args],
        cwd=REPO, env=full_env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    tail = done.stdout.strip().splitlines()[-1]
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?)", tail)}
    return counts, done.stdout + done.stderr


def _fake_evalbench(shared: Path) -> None:
    """A tiny shared/bench/evalbench: one image, one box, one exact detection (every stat 1 or
    -1), with its reference stats."""
    d = shared / "bench" / "evalbench"
    d.mkdir(parents=True)
    gt = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 640, "height": 640}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [100, 100, 200, 200],
                         "area": 40000, "iscrowd": 0}],
    }  # fmt: skip
    (d / "gt.json").write_text(json.dumps(gt))
    dt = [{"image_id": 1, "category_id": 1, "bbox": [100, 100, 200, 200], "score": 0.9}]
    (d / "dt.json").write_text(json.dumps(dt))
    stats = [1.0, 1.0, 1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0, -1.0, -1.0, 1.0]
    (d / "bench_result.json").write_text(json.dumps({"pycocotools": {"stats": stats}}))


def test_cli_test_finds_the_shared_folder_through_the_environment(tmp_path: Path) -> None:
    shared = tmp_path / "elsewhere"
    _fake_evalbench(shared)
    counts, out = _pytest(
        tmp_path, {"DETFORGE_SHARED": str(shared)},
        "tests/cli/test_cli.py::test_eval_json_prints_the_12_stats",
    )  # fmt: skip
    assert counts == {"passed": 1}, out


def test_missing_pieces_of_present_shared_data_fail_instead_of_skipping(tmp_path: Path) -> None:
    shared = tmp_path / "shared_without_bench"
    shared.mkdir()
    no_pycocotools = tmp_path / "block"
    (no_pycocotools / "pycocotools").mkdir(parents=True)
    (no_pycocotools / "pycocotools" / "__init__.py").write_text("raise ImportError('blocked')\n")
    env = {
        "DETFORGE_SHARED": str(shared),
        "PYTHONPATH": os.pathsep.join([str(no_pycocotools), os.environ.get("PYTHONPATH", "")]),
    }
    counts, out = _pytest(
        tmp_path, env, SHARED_BENCH_TESTS,
        "tests/eval/test_coco_evaluator.py::test_custom_iou_thresholds_and_max_dets",
    )  # fmt: skip
    assert "skipped" not in counts and sum(counts.values()) == 3, out
    assert f"the shared folder {shared} has no bench/ folder" in out
    assert "pycocotools is needed" in out


def test_absent_shared_folder_skips(tmp_path: Path) -> None:
    if (REPO.parent / "shared").is_dir():
        # ../shared exists beside this checkout: it cannot be made absent, only overridden
        counts, out = _pytest(
            tmp_path, {"DETFORGE_SHARED": str(tmp_path / "missing")}, SHARED_BENCH_TESTS
        )
        assert counts == {"errors": 2}, out
        assert f"DETFORGE_SHARED={tmp_path / 'missing'} is not a folder" in out
        return
    counts, out = _pytest(tmp_path, {}, SHARED_BENCH_TESTS)
    assert counts == {"skipped": 2}, out
