"""Per-image latency of the peer's own ``predict`` (Python API, batch 1) on given images.

Run with the peer venv only (Ultralytics is AGPL-3.0 and never a detforge dependency), by
``bench/latency_compare.py``:

    /work/peer/venv/bin/python bench/peer/ultralytics_latency.py --weights last.pt \
        --imgsz 640 --warmup 5 --runs 30 --out /tmp/peer_latency [IMAGE ...]

Images are decoded once (OpenCV, BGR as the peer expects arrays) before timing; each timed call
is ``model.predict(array, imgsz=..., conf=0.25, iou=0.7, max_det=300, device="cpu")``, the
peer's pre-processing, forward, NMS and rescaling. The first ``--warmup`` calls are reported
apart. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import disable_integrations, prepare_offline  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True)
    p.add_argument("--imgsz", type=int, required=True)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--out", required=True, help="folder for the peer's settings (created)")
    p.add_argument("images", nargs="+")
    args = p.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    prepare_offline(out)

    import cv2
    import numpy as np
    import torch
    from ultralytics import YOLO

    disable_integrations(out)
    arrays = [cv2.imread(f) for f in args.images]
    model = YOLO(args.weights)
    times, dets = [], []
    for i in range(args.warmup + args.runs):
        t0 = time.perf_counter()
        res = model.predict(arrays[i % len(arrays)], imgsz=args.imgsz, conf=0.25, iou=0.7,
                            max_det=300, device="cpu", verbose=False)  # fmt: skip
        times.append((time.perf_counter() - t0) * 1000)
        dets.append(len(res[0].boxes))
    steady = np.array(times[args.warmup :])
    print(json.dumps({
        "system": "peer", "format": "torch", "imgsz": args.imgsz,
        "warmup_ms": [round(t, 2) for t in times[: args.warmup]],
        "median_ms": round(float(np.median(steady)), 2),
        "p90_ms": round(float(np.percentile(steady, 90)), 2),
        "runs": args.runs, "detections_per_image": round(statistics.mean(dets), 2),
        "torch_threads": torch.get_num_threads(),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
