"""Time the training data pipeline alone, detforge against the Ultralytics peer's own loader.

From the repository root (2-4 minutes on 2 cores, depending on their other load):

    .venv/bin/python bench/loader_speed.py

which is the same as

    .venv/bin/python bench/loader_speed.py --data ../shared/data/hituav/data.yaml \
        --data ../shared/data/coco128/data.yaml --imgsz 640 --batch 16 --workers 2 \
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
the median of each (every run, with the load average before and after it, is in the json). It
also shows CPU ms per image, which such load disturbs much less: the CPU time (user + system) of
the main process and its workers over the timed batches, per image. For detforge it is read with
psutil around the timed batches; for the peer it is the rusage of its harness process (its
workers are waited for, so they are included), median over the repeats, minus the median of
as many runs with ``--batches 0`` (start-up, dataset mirror and warm-up batch).
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
# ../shared beside the repository, as the tests find it
DEFAULT_DATA = [
    str(HERE.parents[1] / "shared" / "data" / d / "data.yaml") for d in ("hituav", "coco128")
]
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


def _tree_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and its live children (loader workers)."""
    import psutil

    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def time_detforge(args: argparse.Namespace, data_yaml: str, cache_dir: Path) -> dict[str, Any]:
    """images/s of detforge's training loader with the config section's default augmentation."""
    import torch

    from detforge.config.schema import AugmentSection
    from detforge.data.augment.core import AugmentParams
    from detforge.data.dataset import YoloDataset
    from detforge.data.datayaml import load_data_yaml
    from detforge.data.loader import build_dataloader

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
    cpu0 = _tree_cpu_seconds()
    start = time.perf_counter()
    for _ in range(args.batches):
        images += next(batches)["img"].shape[0]
    seconds = time.perf_counter() - start
    cpu = _tree_cpu_seconds() - cpu0
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
        "cpu_ms_per_image": round(cpu / images * 1e3, 2),
        "load_avg_1min_before_after": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "torch_version": torch.__version__,
    }


def time_peer(
    args: argparse.Namespace, data_yaml: str, work: Path, name: str, batches: int | None = None
) -> dict[str, Any]:
    """Run the peer's loader harness in its own venv; return its json plus the load average and
    ``cpu_seconds``, the CPU time of the whole process tree (its workers are waited for, so
    their time is in the process's rusage)."""
    out = work / f"peer-{name}.json"
    log = work / f"peer-{name}.log"
    cmd = [
        args.peer_python, str(HERE / "peer" / "ultralytics_loader.py"), "--data", data_yaml,
        "--imgsz", str(args.imgsz), "--batch", str(args.batch), "--workers", str(args.workers),
        "--batches", str(args.batches if batches is None else batches), "--seed", str(args.seed),
        "--out", str(out),
    ]  # fmt: skip
    load0 = os.getloadavg()[0]
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        return {
            "system": "ultralytics",
            "error": log.read_text()[-2000:],
            "command": shlex.join(cmd),
        }
    result = json.loads(out.read_text())
    result["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 3)
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
        "| dataset | detforge images/s | peer images/s | detforge / peer "
        "| CPU ms/image detforge | CPU ms/image peer | peer / detforge CPU |",
        "|---|---|---|---|---|---|---|",
    ]

    def fmt(v: float | None, spec: str = ".1f") -> str:
        return "-" if v is None else format(v, spec)

    for r in rows:
        ours, peer = r["detforge_images_per_s"], r["peer_images_per_s"]
        cpu_ours, cpu_peer = r["detforge_cpu_ms_per_image"], r["peer_cpu_ms_per_image"]
        ratio = f"{ours / peer:.2f}x" if peer else "-"
        cpu_ratio = f"{cpu_peer / cpu_ours:.2f}x" if cpu_peer else "-"
        lines.append(
            f"| {r['dataset']} | {ours:.1f} | {fmt(peer)} | {ratio} | {cpu_ours:.2f} "
            f"| {fmt(cpu_peer, '.2f')} | {cpu_ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    # idle OpenMP threads must sleep, not spin, while the loader workers run (see
    # detforge.utils.threads.prefer_passive_openmp); it only works if set before torch is imported
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = parse_args(argv)
    command = shlex.join([sys.executable, *sys.argv])
    rows = []
    with tempfile.TemporaryDirectory(prefix="loader_speed_") as tmp:
        for data_yaml in args.data:
            name = Path(data_yaml).resolve().parent.name
            ours, peer, base = [], [], []
            for k in range(args.repeats):
                ours.append(time_detforge(args, data_yaml, Path(tmp) / "cache"))
                print(f"{name} #{k}: detforge {ours[-1]['images_per_s']} images/s", flush=True)
                if not args.skip_peer:
                    peer.append(time_peer(args, data_yaml, Path(tmp), name))
                    got = peer[-1].get("images_per_s", peer[-1].get("error"))
                    print(f"{name} #{k}: peer {got}", flush=True)
                    # the same without timed batches (start-up, mirror, warm-up): the peer's
                    # CPU time of the timed batches is the difference of the medians
                    base.append(time_peer(args, data_yaml, Path(tmp), name, batches=0))
            peer_ok = [p for p in peer if "images_per_s" in p]
            base_ok = [b["cpu_seconds"] for b in base if "cpu_seconds" in b]
            peer_rate = [p["images_per_s"] for p in peer_ok]
            peer_cpu = []
            if peer_ok and base_ok:
                spent = median([p["cpu_seconds"] for p in peer_ok]) - median(base_ok)
                peer_cpu = [spent / peer_ok[0]["timed_images"] * 1e3]
            rows.append({
                "dataset": name,
                "data": data_yaml,
                "detforge_images_per_s": median([o["images_per_s"] for o in ours]),
                "peer_images_per_s": median(peer_rate) if peer_rate else None,
                "detforge_cpu_ms_per_image": median([o["cpu_ms_per_image"] for o in ours]),
                "peer_cpu_ms_per_image": round(median(peer_cpu), 2) if peer_cpu else None,
                "detforge_runs": ours,
                "peer_runs": peer,
                "peer_baseline_runs": base,
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
