"""Single-image ``Detector.predict`` latency through the Python API, quiet and with a busy core.

Issue 16.3: the CLI and ``import detforge`` before torch give OpenMP a passive wait policy; a
user who imported torch first gets OpenMP's default (spin, then sleep), which the runtime read
when torch loaded. Each case runs in a fresh interpreter:

- ``detforge-first``: ``import detforge`` then ``Detector.load`` (OMP_WAIT_POLICY=PASSIVE);
- ``torch-first``: ``import torch`` first, ``Detector.load(..., threads=0)``: torch's own thread
  count, spinning OpenMP (the behaviour before the fix);
- ``torch-first-fix``: ``import torch`` first, ``Detector.load`` as is (the fix, see
  :func:`detforge.utils.threads.inference_threads`);
- ``torch-first-env``: ``import torch``, then ``OMP_WAIT_POLICY=PASSIVE`` set (too late: shows
  whether the runtime reads it again);
- ``torch-first-1thread``: ``import torch; torch.set_num_threads(1)`` by hand;
- ``torch-first-tN``: ``import torch`` first, ``Detector.load(..., threads=N)``.

``--busy``: none, or one process spinning a Python loop pinned to the last core (``python``), or
a torch matmul loop on one thread pinned there (``matmul``). Usage (from the repository root)::

    PYTHONPATH=src .venv/bin/python bench/api_busy_predict.py --weights best.pt \
        --image img.jpg [--imgsz 640] [--runs 30] [--busy none,python]

Prints one markdown row per (busy, case): first call, median and p90 ms over ``--runs`` calls
after 3 warm-up calls, torch's thread count and the wait policy in force; writes
bench/results/api_busy_predict.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

CASES = ("detforge-first", "torch-first", "torch-first-fix", "torch-first-env",
         "torch-first-1thread", "torch-first-t1")  # fmt: skip

CHILD = r"""
import json, os, sys, time
case, weights, image, imgsz, runs = sys.argv[1:6]
if case != "detforge-first":
    import torch
if case == "torch-first-env":
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
if case == "torch-first-1thread":
    torch.set_num_threads(1)
import numpy as np
import detforge
kw = {"threads": 0} if case in ("torch-first", "torch-first-env", "torch-first-1thread") else {}
if case.startswith("torch-first-t"):  # an explicit count through the API
    kw = {"threads": int(case.removeprefix("torch-first-t"))}
det = detforge.Detector.load(weights, device="cpu", imgsz=int(imgsz), **kw)
from detforge.data.images import read_image  # imports torch: only after Detector.load
img = read_image(image)
t0 = time.perf_counter(); det.predict(img); first = time.perf_counter() - t0
for _ in range(3):
    det.predict(img)
times = []
for _ in range(int(runs)):
    t0 = time.perf_counter(); det.predict(img); times.append(time.perf_counter() - t0)
import torch
print(json.dumps({"first": first, "times": times, "threads": det.threads or torch.get_num_threads(),
                  "policy": os.environ.get("OMP_WAIT_POLICY", "default")}))
"""

BUSY = {
    "python": "while True: pass",
    "matmul": "import torch\ntorch.set_num_threads(1)\na = torch.randn(512, 512)\n"
    "while True: a @ a",
}


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--busy", default="none,python")
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    last_core = max(os.sched_getaffinity(0))
    rows = []
    print("| busy | case | threads | wait policy | first ms | median ms | p90 ms |")
    print("|---|---|---:|---|---:|---:|---:|")
    for busy in args.busy.split(","):
        proc = None
        if busy != "none":
            proc = subprocess.Popen([sys.executable, "-c", BUSY[busy]], env=env)
            os.sched_setaffinity(proc.pid, {last_core})
            time.sleep(1.0)
        try:
            for case in args.cases.split(","):
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, case, args.weights, args.image,
                     str(args.imgsz), str(args.runs)],
                    env=env, capture_output=True, text=True, check=True,
                )  # fmt: skip
                r = json.loads(out.stdout.strip().splitlines()[-1])
                ms = [t * 1000 for t in r["times"]]
                row = {"busy": busy, "case": case, "threads": r["threads"],
                       "policy": r["policy"], "first_ms": r["first"] * 1000,
                       "median_ms": _pct(ms, 0.5), "p90_ms": _pct(ms, 0.9), "ms": ms}  # fmt: skip
                rows.append(row)
                print(f"| {busy} | {case} | {row['threads']} | {row['policy']} | "
                      f"{row['first_ms']:.0f} | {row['median_ms']:.1f} | {row['p90_ms']:.1f} |",
                      flush=True)  # fmt: skip
        finally:
            if proc is not None:
                proc.kill()
                proc.wait()
    out = Path(__file__).parent / "results" / "api_busy_predict.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"imgsz": args.imgsz, "runs": args.runs, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
