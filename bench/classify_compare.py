"""Classifiers side by side on one classification folder at equal epochs (issue 15).

Each ``--model`` is trained by ``detforge train task=classify`` in its own subprocess, one after
another, with the same data, image size, epochs, batch, seed and loader workers (the task's
defaults otherwise: SGD, warmup then cosine, the default augmentation); extra ``key=value``
settings for every model go after ``--``. A model given as ``NAME:k=v,k=v`` gets its own settings
too (e.g. ``efficientnet_b0:weights=imagenet`` for a fine-tuned row, which needs torchvision's
weights in its cache: offline without them the run fails with the error saying where to put
them, and the script records that failure instead of a row).

Reported per model, from its run folder: the last epoch's top-1, top-5, balanced accuracy and
macro F1 (``results.csv``; the EMA weights that ``last.pt`` holds), the best epoch's top-1, the
parameter count, and training images/s = train images / the median of the per-epoch training
timers (``epoch_time``: validation and checkpoints excluded; the median, so that a burst of other
work on the machine during a few epochs does not set the figure; the mean is kept too).
From the repository root:

    .venv/bin/detforge convert to=classify data=../shared/data/hituav/data.yaml out=/tmp/hcrops
    .venv/bin/python bench/classify_compare.py --data /tmp/hcrops --imgsz 64 --epochs 30 \\
        --batch 64 --out bench/results/classify_hituav_crops --model cnn-s --model efficientnet_b0

``--skip-existing`` keeps the models whose ``systems/<label>.json`` is already written (their
figures are read again from their run folders).
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

METRICS = ("top1", "top5", "balanced_accuracy", "macro_f1")


def parse_model(spec: str) -> tuple[str, str, list[str]]:
    """``NAME[:k=v,...]`` -> (label, model name, settings); the label names the settings too.
    NAME may be ``timm:<name>``."""
    name, _, rest = spec.rpartition(":")
    if "=" not in rest:  # no settings; the name may hold a colon itself (timm:<name>)
        name, rest = spec, ""
    settings = [kv for kv in rest.split(",") if kv]
    bad = [kv for kv in settings if "=" not in kv]
    if bad:
        raise SystemExit(f"--model {spec}: settings must be key=value, got {bad}")
    label = name if not settings else name + "-" + "-".join(kv.split("=")[1] for kv in settings)
    return label.replace("/", "_").replace(":", "_"), name, settings


def train_images(data: Path) -> int:
    from detforge.data.imagefolder import load_classify_data

    return len(load_classify_data(data).splits["train"])


def summarise(run: Path, images: int) -> dict:
    rows = list(csv.DictReader((run / "results.csv").open()))
    last = rows[-1]
    times = [float(r["epoch_time"]) for r in rows]
    best = max(rows, key=lambda r: float(r["metrics/top1"]))
    out = {f"last_{m}": float(last[f"metrics/{m}"]) for m in METRICS}
    out.update(
        epochs=len(rows),
        best_top1=float(best["metrics/top1"]),
        best_epoch=int(best["epoch"]),
        train_seconds=round(sum(times), 2),
        train_images_per_s=round(images / statistics.median(times), 2),
        train_images_per_s_mean=round(images * len(rows) / sum(times), 2),
    )
    return out


def param_count(weights: Path) -> int:
    from detforge.engine.checkpoint import load_checkpoint, model_from_checkpoint

    model = model_from_checkpoint(load_checkpoint(weights), str(weights))
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="classification folder or data.yaml")
    p.add_argument("--model", action="append", required=True, help="NAME[:k=v,...], repeatable")
    p.add_argument("--imgsz", type=int, default=64)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--skip-existing", action="store_true")
    p.add_argument("extra", nargs="*", help="key=value settings for every model (after --)")
    args = p.parse_args()
    detforge = Path(sys.executable).with_name("detforge")
    images = train_images(args.data)
    (args.out / "systems").mkdir(parents=True, exist_ok=True)
    (args.out / "logs").mkdir(exist_ok=True)
    results = []
    for spec in args.model:
        label, name, settings = parse_model(spec)
        record_file = args.out / "systems" / f"{label}.json"
        if args.skip_existing and record_file.is_file():
            record = json.loads(record_file.read_text())
            if record["returncode"] == 0:
                record.update(summarise(args.out / "runs" / label, images))
            results.append(record)
            continue
        cmd = [
            str(detforge), "train", "task=classify", f"data={args.data}", f"model={name}",
            f"imgsz={args.imgsz}", f"epochs={args.epochs}", f"batch={args.batch}",
            f"seed={args.seed}", f"workers={args.workers}", f"project={args.out / 'runs'}",
            f"name={label}", "train.exist_ok=true", "train.progress=false", "device=cpu",
            *args.extra, *settings,
        ]  # fmt: skip
        print("+", " ".join(cmd), flush=True)
        start = time.perf_counter()
        with (args.out / "logs" / f"{label}.log").open("w") as log:
            rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
        wall = round(time.perf_counter() - start, 1)
        record = {"label": label, "model": name, "settings": settings, "returncode": rc,
                  "wall_seconds": wall, "command": cmd}  # fmt: skip
        run = args.out / "runs" / label
        if rc == 0:
            record.update(summarise(run, images))
            record["params"] = param_count(run / "weights" / "last.pt")
        else:
            tail = (args.out / "logs" / f"{label}.log").read_text().strip().splitlines()[-3:]
            record["error"] = "\n".join(tail)
        tmp = record_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2))
        tmp.replace(record_file)
        results.append(record)
    summary = {
        "data": str(args.data), "train_images": images, "imgsz": args.imgsz,
        "epochs": args.epochs, "batch": args.batch, "seed": args.seed, "workers": args.workers,
        "extra": args.extra, "machine": platform.processor() or platform.machine(),
        "systems": results,
    }  # fmt: skip
    (args.out / "results.json").write_text(json.dumps(summary, indent=2))
    print("| model | top-1 (last) | top-5 | balanced acc | macro F1 | best top-1 (epoch) "
          "| train images/s | params |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        if r["returncode"] != 0:
            print(f"| {r['label']} | failed: {r['error'].splitlines()[-1]} |")
            continue
        print(
            f"| {r['label']} | {r['last_top1']:.4f} | {r['last_top5']:.4f} "
            f"| {r['last_balanced_accuracy']:.4f} | {r['last_macro_f1']:.4f} "
            f"| {r['best_top1']:.4f} ({r['best_epoch']}) | {r['train_images_per_s']:.1f} "
            f"| {r['params'] / 1e6:.2f} M |"
        )


if __name__ == "__main__":
    main()
