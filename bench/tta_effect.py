"""Effect of test-time augmentation (and ensembles) on COCO mAP, and its cost in time.

Command (from the repository root; any detforge checkpoint, several for an ensemble):

    .venv/bin/python bench/tta_effect.py --weights runs/hituav/weights/best.pt \
        --data ../shared/data/hituav/data.yaml --imgsz 416 \
        --modes plain,flip+scale:nms,flip+scale:wbf --out bench/results/tta_effect_hituav.json

A mode is ``plain`` (one forward pass, the validator's path) or ``<transforms>:<merge>`` with
transforms joined by ``+`` (flip, vflip, scale, rot90; ``none`` for an ensemble without TTA)
and merge ``nms`` or ``wbf``. Every mode runs the same letterboxed val images through
``detforge.infer.tta.ensemble_predict``, maps the boxes to the original images and scores them
with the COCO evaluator on the dataset's labels (the ``detforge val`` protocol). Time is the
wall time of inference + merging over the split (data loading and scoring excluded), on the
threads torch is given. Prints a markdown table and writes json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from detforge.api import Detector  # noqa: E402
from detforge.data.dataset import YoloDataset  # noqa: E402
from detforge.data.datayaml import load_data_yaml  # noqa: E402
from detforge.data.loader import build_dataloader  # noqa: E402
from detforge.eval.coco import COCOEvaluator  # noqa: E402
from detforge.eval.validator import ground_truth_xyxy  # noqa: E402
from detforge.infer.loop import prepare_images  # noqa: E402
from detforge.infer.postprocess import scale_boxes_to_original  # noqa: E402
from detforge.infer.tta import ensemble_predict, parse_transforms  # noqa: E402


def parse_mode(mode: str) -> tuple[tuple[str, ...], str]:
    """ "plain" -> ((), "nms"); "flip+scale:wbf" -> (("flip", "scale"), "wbf")."""
    if mode == "plain":
        return (), "nms"
    transforms, _, merge = mode.partition(":")
    t = () if transforms == "none" else parse_transforms(transforms.replace("+", ","))
    if merge not in ("nms", "wbf"):
        raise SystemExit(f"mode {mode!r}: the merge after ':' must be nms or wbf")
    return t, merge


def run_mode(models, dataset, loader, device, mode: str, args) -> dict[str, Any]:
    """Predict the whole split in one mode; returns the stats and the inference time."""
    transforms, merge = parse_mode(mode)
    scales = tuple(float(s) for s in args.scales.split(","))
    ev = COCOEvaluator(num_classes=len(dataset.names))
    seconds, images = 0.0, 0
    for batch in loader:
        x = prepare_images(batch["img"], device)
        t0 = time.perf_counter()
        dets = ensemble_predict(
            models,
            x,
            transforms,
            merge,
            conf=args.conf,
            iou=args.iou,
            max_det=args.max_det,
            scales=scales,
        )
        seconds += time.perf_counter() - t0
        for i, det in enumerate(dets):
            k = int(batch["image_ids"][i])
            orig = tuple(batch["orig_shapes"][i])
            boxes = scale_boxes_to_original(det.boxes, batch["ratios"][i], batch["pads"][i], orig)
            gt_boxes, gt_cls = ground_truth_xyxy(dataset.labels[k], dataset.shapes[k])
            ev.process(
                k,
                boxes.double().cpu().numpy(),
                det.scores.double().cpu().numpy(),
                det.classes.cpu().numpy(),
                gt_boxes,
                gt_cls,
            )
        images += len(dets)
    stats = ev.evaluate().stats
    return {
        "mode": mode,
        "transforms": list(transforms),
        "merge": merge,
        "stats": stats,
        "seconds": seconds,
        "ms_per_image": 1000 * seconds / max(images, 1),
        "images": images,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", required=True, help="checkpoint(s), comma-separated")
    ap.add_argument("--data", required=True, help="data.yaml")
    ap.add_argument("--split", default="val")
    ap.add_argument("--imgsz", type=int, default=None, help="default: the checkpoint's")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--modes", default="plain,flip+scale:nms,flip+scale:wbf")
    ap.add_argument("--scales", default="0.83,1.0,1.2")
    ap.add_argument("--conf", type=float, default=0.001)
    ap.add_argument("--iou", type=float, default=0.7)
    ap.add_argument("--max-det", type=int, default=300)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--limit", type=int, default=0, help="first N images only (smoke runs)")
    ap.add_argument("--out", default=None, help="json file for the results")
    args = ap.parse_args(argv)

    detectors = [
        Detector.load(w, device=args.device, imgsz=args.imgsz) for w in args.weights.split(",")
    ]
    models, names = [d.model for d in detectors], detectors[0].names
    imgsz = detectors[0].imgsz
    spec = load_data_yaml(args.data)
    if len(spec.names) != len(names):
        raise SystemExit(f"{args.data} has {len(spec.names)} classes, the weights {len(names)}")
    dataset = YoloDataset.from_spec(spec, args.split, imgsz=imgsz, augment=False)
    n = min(args.limit, len(dataset)) if args.limit else len(dataset)
    batches = [list(range(i, min(i + args.batch, n))) for i in range(0, n, args.batch)]
    loader = build_dataloader(dataset, args.batch, False, workers=0, seed=0, batches=batches)
    results = [
        run_mode(models, dataset, loader, detectors[0].device, m, args)
        for m in args.modes.split(",")
    ]

    base = results[0]
    print(
        f"\n{n} {args.split} images, imgsz {imgsz}, {len(models)} model(s), "
        f"torch threads {torch.get_num_threads()}\n"
    )
    print("| mode | mAP50-95 | mAP50 | APsmall | ms / image | time vs first |")
    print("|---|---|---|---|---|---|")
    for r in results:
        s = r["stats"]
        print(
            f"| {r['mode']} | {s['map50_95']:.4f} | {s['map50']:.4f} | {s['map_small']:.4f} | "
            f"{r['ms_per_image']:.1f} | {r['seconds'] / max(base['seconds'], 1e-9):.2f}x |"
        )
    if args.out:
        record = {
            "weights": args.weights.split(","),
            "data": str(args.data),
            "split": args.split,
            "imgsz": imgsz,
            "conf": args.conf,
            "iou": args.iou,
            "max_det": args.max_det,
            "scales": args.scales,
            "limit": args.limit,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine(),
            "results": results,
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=2))
        print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
