"""Time the Ultralytics training dataloader alone: its own dataset and dataloader builders, with
mosaic and its default training augmentation, no model.

Run with the peer venv only (Ultralytics is AGPL-3.0 and never a detforge dependency):

    /work/peer/venv/bin/python bench/peer/ultralytics_loader.py \
        --data ../shared/data/hituav/data.yaml --imgsz 640 --batch 16 --workers 2 \
        --batches 20 --out /tmp/peer/loader-hituav-w2.json

One warm-up batch (which also starts the worker processes) is drawn first, then `--batches`
batches are timed; the loader is iterated across epoch ends when the dataset is shorter than that
(its persistent iterator, as in the peer's trainer). images/s = images in the timed batches /
seconds. The peer's trainer forces 0 workers on CPU; called directly, its builder takes
`--workers` capped by the CPU count and the number of batches: the json records what it used.
A symlink mirror of the dataset is built next to the output json (`<out stem>_data/`) so that the
peer's label cache is never written into the source folder.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    disable_integrations,
    mirror_dataset,
    peak_rss_mib,
    prepare_offline,
    source_caches,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="YOLO data.yaml (may live in a read-only folder)")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--batches", type=int, default=20, help="timed batches after 1 warm-up batch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output json file")
    return p.parse_args(argv)


def endless(loader):
    """Batches from the peer's persistent loader, crossing epoch ends."""
    while True:
        yield from loader


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    command = shlex.join([sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]])
    out = Path(args.out).resolve()
    work = out.parent / f"{out.stem}_data"
    work.mkdir(parents=True, exist_ok=True)
    prepare_offline(work)

    import torch
    import ultralytics
    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_dataloader, build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset
    from ultralytics.utils.torch_utils import init_seeds

    disable_integrations(work)
    caches_before = source_caches(args.data)
    data_yaml = mirror_dataset(args.data, work / "data")
    init_seeds(args.seed)
    cfg = get_cfg(overrides={"task": "detect", "mode": "train", "imgsz": args.imgsz})
    data = check_det_dataset(str(data_yaml))
    dataset = build_yolo_dataset(cfg, data["train"], args.batch, data, mode="train", stride=32)
    loader = build_dataloader(
        dataset, batch=args.batch, workers=args.workers, shuffle=True, rank=-1, device="cpu"
    )
    batches = endless(loader)

    start = time.perf_counter()
    next(batches)
    warmup_seconds = time.perf_counter() - start
    images = 0
    start = time.perf_counter()
    for _ in range(args.batches):
        images += next(batches)["img"].shape[0]
    seconds = time.perf_counter() - start
    loader.close()

    result = {
        "system": "ultralytics",
        "data": str(Path(args.data).resolve()),
        "dataset_images": len(dataset),
        "imgsz": args.imgsz,
        "batch": args.batch,
        "workers_asked": args.workers,
        "workers_used": loader.num_workers,
        "mosaic": cfg.mosaic,
        "warmup_batches": 1,
        "warmup_seconds": round(warmup_seconds, 3),
        "timed_batches": args.batches,
        "timed_images": images,
        "seconds": round(seconds, 3),
        "images_per_s": round(images / seconds, 2),
        "peak_rss_mib": peak_rss_mib(),
        "new_cache_files_in_source": sorted(source_caches(args.data) - caches_before),
        "ultralytics_version": ultralytics.__version__,
        "torch_version": torch.__version__,
        "command": command,
    }
    out.write_text(json.dumps(result, indent=2))
    print(
        f"images_per_s={result['images_per_s']} workers_used={result['workers_used']} "
        f"imgsz={args.imgsz} batch={args.batch} timed_images={images} seconds={seconds:.2f} "
        f"-> {out}"
    )
    return result


if __name__ == "__main__":
    main()
