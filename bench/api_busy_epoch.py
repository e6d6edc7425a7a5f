"""Time one small training epoch through the Python API while another process keeps a core busy.

Issue 10.7: the API ran slower than the CLI under load because only the CLI asked OpenMP for a
passive wait policy. ``detforge.train`` now asks for it too, before torch loads; it cannot once
the caller has imported torch. This script runs both cases, each in a fresh interpreter:

- ``passive``: ``import detforge; detforge.train(...)`` (the API sets OMP_WAIT_POLICY=PASSIVE);
- ``default``: ``import torch`` first, so OpenMP keeps its default (spin, then sleep).

Usage (from the repository root; a few minutes on 2 cores)::

    PYTHONPATH=src .venv/bin/python bench/api_busy_epoch.py [--repeats 2] [--images 64]

Prints one line per run (seconds of the training epoch, from ``TrainResult.train_seconds``) and
the median of each case.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

RUN = """
import json, sys
if sys.argv[1] == "default":
    import torch  # loads OpenMP before detforge can ask for the passive policy
import detforge
r = detforge.train(data=sys.argv[2], epochs=1, imgsz=128, batch=8, workers=0, amp="off",
                   project=sys.argv[3], verbose=False,
                   **{"data.cache_dir": sys.argv[4], "train.progress": False,
                      "eval.report": False})
import os
print(json.dumps({"seconds": r.train_seconds, "omp": os.environ.get("OMP_WAIT_POLICY")}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--images", type=int, default=64)
    args = ap.parse_args()
    from detforge.data.demo import generate_demo_dataset

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    with tempfile.TemporaryDirectory() as tmp:
        data = generate_demo_dataset(
            Path(tmp) / "data", num_train=args.images, num_val=16, imgsz=128, seed=0
        )
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        times: dict[str, list[float]] = {"passive": [], "default": []}
        try:
            for i in range(args.repeats):
                for case in times:
                    out = subprocess.run(
                        [sys.executable, "-c", RUN, case, str(data), f"{tmp}/runs{i}{case}",
                         f"{tmp}/cache"],
                        env=env, capture_output=True, text=True, check=True,
                    )  # fmt: skip
                    res = json.loads(out.stdout.strip().splitlines()[-1])
                    times[case].append(res["seconds"])
                    policy = res["omp"]
                    print(f"{case:8s} run {i + 1}: {res['seconds']:.2f} s  OMP policy {policy}")
        finally:
            busy.kill()
            busy.wait()
    for case, values in times.items():
        print(f"{case:8s} median {statistics.median(values):.2f} s over {len(values)} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
