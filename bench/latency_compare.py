"""Per-image predict latency: detforge (PyTorch and ONNX Runtime) against the peer's own predict.

Each system runs in its own process through its Python API at batch 1 on the same images
(decoded once before timing): detforge ``Detector.load(weights).predict(array)`` on the ``.pt``
and on an ONNX file exported from it (``detforge export``, parity-checked), the peer's
``YOLO(weights).predict(array)`` (``bench/peer/ultralytics_latency.py`` in its venv). Both
detect at conf 0.25, NMS IoU 0.7, max 300. After ``--warmup`` untimed calls, ``--runs`` timed
calls give the median and the 90th percentile (``detforge.export.benchmark.time_per_image``, the
statistics of ``detforge benchmark``). detforge's PyTorch precision is ``Detector.load``'s
default (``auto``: bf16 on CPUs with AVX-512-BF16 or AMX, as ``detforge predict``) unless
``--amp off``; ``--threads N`` fixes its intra-op threads (default: the API's choice). detforge
letterboxes to the smallest stride rectangle (``predict.rect``, the default; the ONNX file is
exported with ``dynamic=true`` so it takes that shape) unless ``--square``.

Conditions: ``quiet`` (nothing else should run: the script cannot check other users, say in
BENCHMARKS.md what shared the machine) and ``busy`` (a pure-Python busy loop pinned to core 0
with ``taskset`` for the whole measurement, the situation of a camera box that also does other
work). Issue 16's run (from the repository root):

    .venv/bin/python bench/latency_compare.py --weights runs/train/weights/best.pt \\
        --peer-weights /tmp/peer/hituav/runs/train/weights/last.pt \\
        --data ../shared/data/hituav/data.yaml --imgsz 320 640 --out bench/results/latency

Writes results.json and table.md in ``--out``; prints the table (ratios ours / peer's).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PEER_SCRIPT = REPO / "bench" / "peer" / "ultralytics_latency.py"
DEFAULT_PEER_PYTHON = Path(os.environ.get("PEER_VENV", "/work/peer/venv")) / "bin" / "python"


def child(
    weights: str, imgsz: int, warmup: int, runs: int, images: list[str], amp: str,
    threads: int | None, rect: bool = True,
) -> dict:  # fmt: skip
    """Time detforge's Python API in this process (``--child``)."""
    from detforge.api import Detector

    # first, as a user's script would (it chooses OpenMP's wait policy before torch loads)
    onnx = weights.endswith(".onnx")
    kw = {} if onnx else {"amp": amp}
    det = Detector.load(weights, device="cpu", imgsz=imgsz, threads=threads, **kw)
    import torch

    from detforge.data.images import read_image
    from detforge.export.benchmark import time_per_image

    arrays = [read_image(f) for f in images]
    dets = []

    def predict_one(img):
        dets.append(len(det.predict(img, conf=0.25, iou=0.7, max_det=300, batch=1, rect=rect)[0]))

    stats = time_per_image(predict_one, arrays, warmup, runs)
    return {
        "system": "detforge", "format": "onnx" if onnx else "torch", "imgsz": imgsz,
        "precision": {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(det.amp_dtype, "fp32"),
        "warmup_ms": [round(t, 2) for t in stats.warmup_ms],
        "median_ms": round(stats.median_ms, 2), "p90_ms": round(stats.p90_ms, 2), "runs": runs,
        "detections_per_image": round(float(np.mean(dets[warmup:])), 2),
        "torch_threads": det.threads or torch.get_num_threads(), "rect": rect,
    }  # fmt: skip


def val_images(data_yaml: str, n: int) -> list[str]:
    sys.path.insert(0, str(REPO / "src"))
    from detforge.data.dataset import YoloDataset
    from detforge.data.datayaml import load_data_yaml

    files = YoloDataset.from_spec(load_data_yaml(data_yaml), "val", augment=False, cache=False)
    return [str(f) for f in files.image_files[:n]]


def run_json(cmd: list[str]) -> dict:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(cmd[:4])} ... failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def busy_loop() -> subprocess.Popen:
    """A pure-Python loop pinned to core 0 (the other process of a shared box)."""
    return subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", "while True: pass"])


def markdown(rows: list[dict]) -> str:
    lines = ["| condition | imgsz | system | median ms | p90 ms | p90 / median | median / peer's "
             "| detections/image |", "|---|---:|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    peer = {(r["condition"], r["imgsz"]): r for r in rows if r["system"] == "peer"}
    for r in rows:
        ref = peer.get((r["condition"], r["imgsz"]))
        ratio = f"{r['median_ms'] / ref['median_ms']:.2f}" if ref else ""
        name = "peer predict" if r["system"] == "peer" else f"detforge {r['format']}"
        if r.get("precision", "fp32") != "fp32":
            name += f" {r['precision']}"
        lines.append(
            f"| {r['condition']} | {r['imgsz']} | {name} | {r['median_ms']:.1f} | "
            f"{r['p90_ms']:.1f} | {r['p90_ms'] / r['median_ms']:.2f} | {ratio} | "
            f"{r['detections_per_image']:.1f} |"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", help="detforge checkpoint (.pt)")
    p.add_argument("--peer-weights", help="the peer's trained .pt")
    p.add_argument("--data", help="data.yaml: its first --images val images are timed")
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--imgsz", type=int, nargs="+", default=[320, 640])
    p.add_argument("--conditions", nargs="+", default=["quiet", "busy"], choices=["quiet", "busy"])
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--out", type=Path)
    p.add_argument("--peer-python", type=Path, default=DEFAULT_PEER_PYTHON)
    p.add_argument(
        "--amp",
        default="auto",
        choices=["auto", "off", "bf16"],
        help="detforge PyTorch precision (Detector.load amp=; default: its default)",
    )
    p.add_argument("--threads", type=int, default=None,
                   help="detforge torch intra-op threads (Detector.load threads=; default: its "
                   "choice). onnxruntime keeps its own (one per core)")  # fmt: skip
    p.add_argument("--square", action="store_true",
                   help="detforge letterboxes to the square imgsz (predict.rect=false) and exports "
                   "a fixed-size ONNX file; default: the smallest stride rectangle (predict.rect, "
                   "a dynamic ONNX file)")  # fmt: skip
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:  # WEIGHTS IMGSZ IMAGE...: time detforge in this process
        weights, size, *images = args.child
        stats = child(
            weights,
            int(size),
            args.warmup,
            args.runs,
            images,
            args.amp,
            args.threads,
            rect=not args.square,
        )
        print(json.dumps(stats))
        return 0
    if not (args.weights and args.peer_weights and args.data and args.out):
        p.error("--weights, --peer-weights, --data and --out are required")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    images = val_images(args.data, args.images)
    detforge = Path(sys.executable).parent / "detforge"
    onnx = {}
    for size in args.imgsz:
        onnx[size] = out / f"model-{size}.onnx"
        data = f"data={Path(args.data).resolve()}"
        cmd = [str(detforge), "export", f"weights={args.weights}", "format=onnx",
               f"imgsz={size}", f"out={onnx[size]}", data,
               f"dynamic={str(not args.square).lower()}"]  # fmt: skip
        if subprocess.run(cmd, capture_output=True, text=True).returncode != 0:
            raise SystemExit(f"export failed: {shlex.join(cmd)}")
    timing = ["--warmup", str(args.warmup), "--runs", str(args.runs)]
    ours = [*timing, "--amp", args.amp, *(["--square"] if args.square else [])]
    if args.threads is not None:
        ours += ["--threads", str(args.threads)]
    rows = []
    for condition in args.conditions:
        busy = busy_loop() if condition == "busy" else None
        try:
            for size in args.imgsz:
                for weights in (args.weights, str(onnx[size])):
                    cmd = [sys.executable, __file__, *ours, "--child", weights, str(size)]
                    rows.append({"condition": condition, **run_json(cmd + images)})
                cmd = [str(args.peer_python), str(PEER_SCRIPT), "--weights", args.peer_weights,
                       "--imgsz", str(size), *timing, "--out", str(out / "peer")]  # fmt: skip
                rows.append({"condition": condition, **run_json(cmd + images)})
                print(markdown(rows[-3:]).splitlines()[-3:], flush=True)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    table = markdown(rows)
    command = shlex.join([sys.executable, *sys.argv])
    machine = {"cpu_count": os.cpu_count(), "platform": platform.platform()}
    report = {"command": command, "rows": rows, "images": images, "machine": machine}
    (out / "results.json").write_text(json.dumps(report, indent=2))
    (out / "table.md").write_text(f"{table}\n\n```\n{command}\n```\n")
    print(f"\n{table}\n\nresults: {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
