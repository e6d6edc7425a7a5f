"""Classification training data pipeline alone: detforge against torchvision's ImageFolder.

Both read the same train split of a classification folder (e.g. hituav's object crops from
``detforge convert to=classify``) with the same augmentation, torchvision v2 transforms on uint8
tensors: random resized crop to ``--imgsz`` (scale 0.35-1), horizontal flip, colour jitter
(0.4 brightness, 0.4 saturation, 0.015 hue), and ``--auto-augment`` if given; batches of
``--batch`` through a DataLoader with ``--workers`` workers, shuffled. detforge:
``ClassifyDataset`` (OpenCV decoding, per-sample seeded augmentation) and ``ClassifyCollate``
through detforge's ``build_dataloader`` (one OpenCV and torch thread per worker);
the reference: ``torchvision.datasets.ImageFolder`` with ``torchvision.io.decode_image``
(``loader=``) and the same ``v2.Compose``, default collate. No model runs.

One warm-up batch (which also starts the workers), then ``--batches`` timed batches; each system
``--repeats`` times, alternating, median images/s reported. From the repository root:

    .venv/bin/detforge convert to=classify data=../shared/data/hituav/data.yaml out=/tmp/hcrops
    .venv/bin/python bench/classify_loader_speed.py --data /tmp/hcrops --imgsz 64 --batch 64 \\
        --workers 2 --batches 30 --repeats 3 --out bench/results/classify_loader_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def transforms(imgsz: int, auto_augment: str | None):
    from detforge.data.classify_set import ClassifyAugment, build_transforms

    return build_transforms(imgsz, ClassifyAugment(auto_augment=auto_augment))


def detforge_loader(root: Path, args):
    from detforge.data.classify_set import ClassifyAugment, ClassifyCollate, ClassifyDataset
    from detforge.data.imagefolder import load_classify_data
    from detforge.data.loader import build_dataloader

    data = load_classify_data(root)
    aug = ClassifyAugment(auto_augment=args.auto_augment)
    ds = ClassifyDataset(data.splits["train"], args.imgsz, aug, seed=0)
    return build_dataloader(ds, args.batch, shuffle=True, workers=args.workers, seed=0,
                            collate_fn=ClassifyCollate(len(data.names), aug))  # fmt: skip


def torchvision_loader(root: Path, args):
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder
    from torchvision.io import ImageReadMode, decode_image

    def load(path: str):
        return decode_image(path, mode=ImageReadMode.RGB)

    ds = ImageFolder(str(root / "train"), transform=transforms(args.imgsz, args.auto_augment),
                     loader=load)  # fmt: skip
    return DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=args.workers,
                      persistent_workers=args.workers > 0)  # fmt: skip


def time_loader(loader, batches: int) -> tuple[float, int]:
    it = iter(loader)
    next(it)  # warm-up: starts the workers
    images, t0 = 0, time.perf_counter()
    for _ in range(batches):
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        images += len(batch["img"] if isinstance(batch, dict) else batch[0])
    return images / (time.perf_counter() - t0), images


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="classification folder (train/...)")
    p.add_argument("--imgsz", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--auto-augment", choices=["randaugment", "trivialaugment"])
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    runs: dict[str, list[float]] = {"detforge": [], "torchvision ImageFolder": []}
    builders = {"detforge": detforge_loader, "torchvision ImageFolder": torchvision_loader}
    for _ in range(args.repeats):
        for name, build in builders.items():
            loader = build(args.data, args)
            rate, _ = time_loader(loader, args.batches)
            runs[name].append(round(rate, 1))
            del loader
            print(f"{name}: {rate:.1f} images/s (load average {os.getloadavg()[0]:.2f})",
                  flush=True)  # fmt: skip
    med = {k: statistics.median(v) for k, v in runs.items()}
    ratio = med["detforge"] / med["torchvision ImageFolder"]
    table = "\n".join([
        "| pipeline | images/s (median) | runs |", "|---|---:|---|",
        *(f"| {k} | {med[k]:.1f} | {', '.join(map(str, v))} |" for k, v in runs.items()),
        "", f"detforge / torchvision: {ratio:.2f}x",
    ])  # fmt: skip
    print("\n" + table)
    if args.out:
        report = {"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs,
                  "median": med, "ratio": ratio, "command": " ".join(sys.argv),
                  "cpu_count": os.cpu_count(), "platform": platform.platform()}  # fmt: skip
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
