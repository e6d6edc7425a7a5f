"""Time the training data pipeline alone, detforge against the Ultralytics peer's own loader.

From the repository root (2-4 minutes on 2 cores, depending on their other load):

    .venv/bin/python bench/loader_speed.py

which is the same as

    .venv/bin/python bench/loader_speed.py --data /work/shared/data/hituav/data.yaml \
        --data /work/shared/data/coco128/data.yaml --imgsz 640 --batch 16 --workers 2 \
        --batches 20 --seed 0 --repeats 3 --out bench/results/loader_speed.json

For each dataset, in one run: detforge's train split through ``YoloDataset`` (augment=True with
the defaults of the ``augment`` config section: mosaic 1.0, scale 0.5, translate 0.1, HSV
0.015/0.7/0.4, fliplr 0.5) and ``build_dataloader`` (shuffle, persistent workers), then the
peer's own dataset and dataloader builders with its default training augmentation (mosaic 1.0)
through ``bench/peer/ultralytics_loader.py`` in the peer venv (a subprocess: the peer is AGPL and
never imported here). Both draw one warm-up batch (which also starts the workers) and then time
``--batches`` batches, crossing epoch ends (coco128 has 8 batches an epoch); no model runs.
images/s = images in the timed batches / seconds. Mosaic stays on throughout for both
(close_mosaic is a trainer setting). The peer's label cache and dataset mirror, and detforge's
label cache, go to a temporary folder that is removed at the end.

The machine's cores are shared with other jobs, whose load moves single figures by 20-40%: each
system is measured ``--repeats`` times, alternating detforge and peer runs, and the table shows
the median of each (every run, with the load average before and after it, is in the json).
Prints a markdown table and writes ``--out`` (json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = ["/work/shared/data/hituav/data.yaml", "/work/shared/data/coco128/data.yaml"]
DEFAULT_PEER = os.environ.get("PEER_VENV", "/work/peer/venv") + "/bin/python"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", action="append", help="data.yaml (repeat); default hituav, coco128")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batches", type=int, default=20, help="timed batches after 1 warm-up")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3, help="runs per system, alternating")
    p.add_argument("--peer-python", default=DEFAULT_PEER)
    p.add_argument("--skip-peer", action="store_true", help="time detforge only")
    p.add_argument("--out", default=str(HERE / "results" / "loader_speed.json"))
    args = p.parse_args(argv)
    args.data = args.data or DEFAULT_DATA
    return args


def time_detforge(args: argparse.Namespace, data_yaml: str, cache_dir: Path) -> dict[str, Any]:
    """images/s of detforge's training loader with the config section's default augmentation."""
    import torch

    from detforge.config.schema import AugmentSection
    from detforge.data.dataset import YoloDataset
    from detforge.data.datayaml import load_data_yaml
    from detforge.data.loader import build_dataloader
    from detforge.data.transforms import AugmentParams

    section = AugmentSection()
    params = AugmentParams.from_mapping(section)
    spec = load_data_yaml(data_yaml)
    dataset = YoloDataset.from_spec(
        spec, "train", imgsz=args.imgsz, augment=True, aug=params, cache_dir=cache_dir,
        seed=args.seed, albumentations=section.albumentations,
    )  # fmt: skip
    loader = build_dataloader(
        dataset, batch_size=args.batch, shuffle=True, workers=args.workers, seed=args.seed
    )

    def endless():
        epoch = 0
        while True:
            dataset.set_epoch(epoch)
            yield from loader
            epoch += 1

    batches = endless()
    load0 = os.getloadavg()[0]
    start = time.perf_counter()
    next(batches)
    warmup = time.perf_counter() - start
    images = 0
    start = time.perf_counter()
    for _ in range(args.batches):
        images += next(batches)["img"].shape[0]
    seconds = time.perf_counter() - start
    batches.close()  # drops the loader iterator, which stops its workers
    return {
        "system": "detforge",
        "dataset_images": len(dataset),
        "workers_used": min(args.workers, os.cpu_count() or 1),
        "augment": params.__dict__,
        "warmup_seconds": round(warmup, 3),
        "timed_images": images,
        "seconds": round(seconds, 3),
        "images_per_s": round(images / seconds, 2),
        "load_avg_1min_before_after": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "torch_version": torch.__version__,
    }


def time_peer(args: argparse.Namespace, data_yaml: str, work: Path, name: str) -> dict[str, Any]:
    """Run the peer's loader harness in its own venv; return its json plus the load average."""
    out = work / f"peer-{name}.json"
    cmd = [
        args.peer_python, str(HERE / "peer" / "ultralytics_loader.py"), "--data", data_yaml,
        "--imgsz", str(args.imgsz), "--batch", str(args.batch), "--workers", str(args.workers),
        "--batches", str(args.batches), "--seed", str(args.seed), "--out", str(out),
    ]  # fmt: skip
    load0 = os.getloadavg()[0]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        return {"system": "ultralytics", "error": proc.stderr[-2000:], "command": shlex.join(cmd)}
    result = json.loads(out.read_text())
    result["load_avg_1min_before_after"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
    return result


def median(values: list[float]) -> float:
    v = sorted(values)
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"Training data pipeline alone: {args.imgsz} px, batch {args.batch}, {args.workers} "
        f"workers, {args.batches} batches after 1 warm-up, default augmentation with mosaic "
        f"(median of {args.repeats} alternating runs each)",
        "",
        "| dataset | detforge images/s | peer images/s | detforge / peer |",
        "|---|---|---|---|",
    ]
    for r in rows:
        ours, peer = r["detforge_images_per_s"], r["peer_images_per_s"]
        ratio = f"{ours / peer:.2f}x" if peer else "-"
        peer_text = f"{peer:.1f}" if peer else "-"
        lines.append(f"| {r['dataset']} | {ours:.1f} | {peer_text} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    # idle OpenMP threads must sleep, not spin, while the loader workers run (see
    # detforge.cli._quiet_openmp); it only works if set before torch is imported
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = parse_args(argv)
    command = shlex.join([sys.executable, *sys.argv])
    rows = []
    with tempfile.TemporaryDirectory(prefix="loader_speed_") as tmp:
        for data_yaml in args.data:
            name = Path(data_yaml).resolve().parent.name
            ours, peer = [], []
            for k in range(args.repeats):
                ours.append(time_detforge(args, data_yaml, Path(tmp) / "cache"))
                print(f"{name} #{k}: detforge {ours[-1]['images_per_s']} images/s", flush=True)
                if not args.skip_peer:
                    peer.append(time_peer(args, data_yaml, Path(tmp), name))
                    got = peer[-1].get("images_per_s", peer[-1].get("error"))
                    print(f"{name} #{k}: peer {got}", flush=True)
            peer_ok = [p["images_per_s"] for p in peer if "images_per_s" in p]
            rows.append({
                "dataset": name,
                "data": data_yaml,
                "detforge_images_per_s": median([o["images_per_s"] for o in ours]),
                "peer_images_per_s": median(peer_ok) if peer_ok else None,
                "detforge_runs": ours,
                "peer_runs": peer,
            })  # fmt: skip
    text = table(rows, args)
    print("\n" + text)
    result = {
        "command": command,
        "settings": {
            k: getattr(args, k) for k in ("imgsz", "batch", "workers", "batches", "seed", "repeats")
        },
        "results": rows,
        "table": text,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
