"""Speed and agreement of COCO bbox evaluators: pycocotools, faster-coco-eval 1.x, detforge.

Command (from the repository root; needs the dev extras and ../shared beside the repo):

    .venv/bin/python bench/eval_speed.py --data ../shared/bench/evalbench --runs 3

Each system is timed ``--runs`` times in this one process and the median is reported:
- load: reading the two json files into the system's own objects;
- eval: pycocotools / faster-coco-eval ``evaluate + accumulate + summarize``, detforge
  ``evaluate_coco`` (grouping per image + ``COCOEvaluator.process`` for every image + ``evaluate``).
All three must give the same 12 stats (detforge within 1e-12 of pycocotools, else exit code 1).
Prints a markdown table and writes ``bench/results/eval_speed.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from detforge.data.cocofmt import load_json  # noqa: E402
from detforge.eval.cocojson import evaluate_coco  # noqa: E402
from detforge.utils.atomic import write_json_atomic  # noqa: E402


def run_pycocotools(gt: Path, dt: Path) -> tuple[float, float, list[float]]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        g = COCO(str(gt))
        d = g.loadRes(str(dt))
        t1 = time.perf_counter()
        e = COCOeval(g, d, "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1, [float(s) for s in e.stats]


def run_faster_coco_eval(gt: Path, dt: Path) -> tuple[float, float, list[float]]:
    from faster_coco_eval import COCO, COCOeval_faster

    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        g = COCO(str(gt))
        d = g.loadRes(str(dt))
        t1 = time.perf_counter()
        # iouType must be given: faster-coco-eval defaults to segmentation.
        e = COCOeval_faster(g, d, iouType="bbox", print_function=lambda *a, **k: None)
        e.evaluate()
        e.accumulate()
        e.summarize()
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1, [float(s) for s in e.stats[:12]]


def run_detforge(gt: Path, dt: Path) -> tuple[float, float, list[float]]:
    t0 = time.perf_counter()
    g, d = load_json(gt), load_json(dt)
    t1 = time.perf_counter()
    res = evaluate_coco(g, d)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, res.stats_array().tolist()


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "bench" / "evalbench")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "eval_speed.json")
    args = ap.parse_args(argv)
    gt, dt = args.data / "gt.json", args.data / "dt.json"
    if not gt.is_file() or not dt.is_file():
        print(f"evalbench files not found under {args.data}", file=sys.stderr)
        return 2

    systems: dict[str, Callable[[Path, Path], tuple[float, float, list[float]]]] = {
        "pycocotools": run_pycocotools,
        "faster-coco-eval": run_faster_coco_eval,
        "detforge": run_detforge,
    }
    results: dict[str, dict[str, Any]] = {}
    for name, fn in systems.items():
        runs = [fn(gt, dt) for _ in range(args.runs)]
        load = statistics.median(r[0] for r in runs)
        ev = statistics.median(r[1] for r in runs)
        results[name] = {"load_s": load, "eval_s": ev, "total_s": load + ev, "stats": runs[0][2],
                         "eval_runs_s": [r[1] for r in runs]}  # fmt: skip

    ref = np.array(results["pycocotools"]["stats"])
    for r in results.values():
        r["max_abs_diff_vs_pycocotools"] = float(np.abs(np.array(r["stats"]) - ref).max())
    ok = results["detforge"]["max_abs_diff_vs_pycocotools"] <= 1e-12
    ok_fce = results["faster-coco-eval"]["max_abs_diff_vs_pycocotools"] <= 1e-4

    py_ev, fce_ev = results["pycocotools"]["eval_s"], results["faster-coco-eval"]["eval_s"]
    lines = [
        f"evalbench: {args.data.resolve()}, median of {args.runs} runs, {os.cpu_count()} CPUs",
        "",
        "| system | load s | eval s | load+eval s | eval speed-up vs pycocotools "
        "| eval speed-up vs faster-coco-eval | max abs stat diff vs pycocotools |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['load_s']:.3f} | {r['eval_s']:.3f} | {r['total_s']:.3f} "
            f"| {py_ev / r['eval_s']:.2f}x | {fce_ev / r['eval_s']:.2f}x "
            f"| {r['max_abs_diff_vs_pycocotools']:.1e} |"
        )
    print("\n".join(lines))
    yes = {True: "yes", False: "NO"}
    print(f"\nstats agree: detforge {yes[ok]}, faster-coco-eval {yes[ok_fce]}")

    write_json_atomic(
        args.out,
        {
            "command": "python bench/eval_speed.py " + " ".join(argv or sys.argv[1:]),
            "data": str(args.data.resolve()),
            "runs": args.runs,
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "versions": {m: _version(m) for m in ("pycocotools", "faster-coco-eval", "numpy")},
            "results": results,
            "stats_agree": ok and ok_fce,
        },
        indent=1,
    )
    return 0 if ok and ok_fce else 1


if __name__ == "__main__":
    sys.exit(main())
