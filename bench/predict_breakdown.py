"""Where the time of one ``Detector.predict`` call goes, stage by stage (issue 16).

Runs the stages of :meth:`detforge.api.Detector.predict` one by one on real images, timing each
with ``time.perf_counter``: letterbox (one pass into the batch), to-tensor (uint8 -> float
input), forward (PyTorch under the Detector's autocast, or the onnxruntime session), decode of
the head outputs (PyTorch only: an exported graph decodes inside the forward), NMS
(threshold, class-aware NMS, cap), rescale to the original pixels; then times the whole
``predict`` call; its excess over the stages' sum is the Python around them (a difference of
two medians, so only a large value means anything). Prints one JSON line: the median of each
stage over ``--runs`` images after ``--warmup``, and its share.

On a shared machine compare shares, not milliseconds, and repeat. Example (repository root):

    PYTHONPATH=src .venv/bin/python bench/predict_breakdown.py --weights best.pt --imgsz 640 \\
        --images ../shared/data/hituav/images/val --conf 0.25 --threads 1 --amp off
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

STAGES = ("letterbox", "to_tensor", "forward", "decode", "nms", "rescale")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True, help="a detforge .pt or an exported .onnx")
    p.add_argument("--images", type=Path, required=True, help="a folder of images")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--conf", type=float, default=0.25)
    p.add_argument("--threads", type=int, default=None, help="Detector.load threads=")
    p.add_argument("--amp", default="auto", help="Detector.load amp= (.pt only)")
    p.add_argument("--count", type=int, default=16, help="images used, cycled")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--runs", type=int, default=30)
    args = p.parse_args()

    from detforge.api import Detector  # before torch: the API picks OpenMP's wait policy

    onnx = args.weights.endswith(".onnx")
    kw = {} if onnx else {"amp": args.amp}
    det = Detector.load(args.weights, device="cpu", imgsz=args.imgsz, threads=args.threads, **kw)
    import torch

    from detforge.data.images import read_image
    from detforge.infer.device import autocast
    from detforge.infer.postprocess import postprocess, scale_boxes_to_original
    from detforge.infer.preprocess import letterbox_batch, to_input
    from detforge.models.decode import decode_model_outputs
    from detforge.utils.threads import intra_op_threads

    files = sorted(f for f in args.images.iterdir() if f.suffix.lower() in (".jpg", ".png"))
    arrays = [read_image(f) for f in files[: args.count]]
    times: dict[str, list[float]] = {k: [] for k in (*STAGES, "predict")}
    candidates, detections = [], []
    m = det.model
    for i in range(args.warmup + args.runs):
        img = arrays[i % len(arrays)]
        with torch.inference_mode(), intra_op_threads(det.threads):
            t = [time.perf_counter()]
            batch, placed = letterbox_batch([img], det.imgsz)
            t.append(time.perf_counter())
            x = to_input(batch, det.device, channels_last=not onnx)
            t.append(time.perf_counter())
            if onnx:
                out = m.run(x, args.conf)
                t.append(time.perf_counter())
                boxes, scores = (torch.from_numpy(out[k]) for k in ("boxes", "scores"))
            else:
                with autocast(det.device, det.amp_dtype):
                    maps = [o.float() for o in m(x)]
                t.append(time.perf_counter())
                boxes, scores = decode_model_outputs(m, maps)
            t.append(time.perf_counter())
            d = postprocess(boxes, scores, args.conf, 0.7, 300)[0]
            t.append(time.perf_counter())
            scale_boxes_to_original(d.boxes, placed[0].ratio, placed[0].pad, placed[0].shape)
            t.append(time.perf_counter())
        t0 = time.perf_counter()
        det.predict(img, conf=args.conf, batch=1)
        whole = time.perf_counter() - t0
        if i < args.warmup:
            continue
        for k, a, b in zip(STAGES, t[:-1], t[1:], strict=True):
            times[k].append((b - a) * 1000)
        times["predict"].append(whole * 1000)
        candidates.append(int((scores > args.conf).sum()))
        detections.append(len(d))
    med = {k: float(np.median(v)) for k, v in times.items()}
    total = sum(med[k] for k in STAGES)
    print(json.dumps({
        "weights": args.weights, "imgsz": args.imgsz, "conf": args.conf, "threads": det.threads,
        "precision": "fp32" if det.amp_dtype is None else str(det.amp_dtype).split(".")[-1],
        "candidates": float(np.median(candidates)), "detections": float(np.mean(detections)),
        "median_ms": {k: round(v, 3) for k, v in med.items()},
        "share_pct": {k: round(100 * med[k] / total, 1) for k in STAGES},
        "python_around_ms": round(med["predict"] - total, 3),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
