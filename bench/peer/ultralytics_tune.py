"""Run the peer's own hyperparameter tuner (Ultralytics ``model.tune()``) from scratch on CPU.

Run with the peer venv only (Ultralytics is AGPL-3.0 and never a detforge dependency):

    /work/peer/venv/bin/python bench/peer/ultralytics_tune.py \
        --data ../shared/data/hituav/data.yaml --model yolo11n.yaml --imgsz 320 \
        --epochs 6 --iterations 16 --fraction 0.5 --batch 16 --seed 0 --out /tmp/peer/tune

The peer's tuner mutates its built-in space (about 28 floats: learning rates, momentum, loss
gains, augmentation probabilities) from the best iterations so far; every iteration is one
training of ``--epochs`` epochs on ``--fraction`` of the training images, validated by the peer
itself (its fitness), with no per-epoch pruning. Re-running the same command resumes (the peer
reads its ``tune_results.ndjson``).

Writes into OUT_DIR:
    best_hyperparameters.yaml  the peer's winner (train arguments), for
                               ``ultralytics_train.py --hyp`` / ``train_compare.py peer:...:hyp=``
    result.json                per-iteration fitness and seconds, the winner, versions, command
    runs/tune/                 the peer's own tune folder; data/, yolo_config/, workdir/ as in
                               ultralytics_train.py
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import disable_integrations, mirror_dataset, prepare_offline  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="YOLO data.yaml")
    p.add_argument("--model", default="yolo11n.yaml", help="model yaml known to Ultralytics")
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--epochs", type=int, default=6, help="epochs per iteration")
    p.add_argument("--iterations", type=int, default=16, help="trainings in all")
    p.add_argument("--fraction", type=float, default=0.5, help="fraction of the training images")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="asked for; the peer uses 0 on CPU")
    p.add_argument("--out", required=True, help="output folder (created; re-run to resume)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    command = shlex.join([sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]])
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    prepare_offline(out)

    import torch
    import ultralytics
    import yaml
    from ultralytics import YOLO

    disable_integrations(out)
    data_yaml = mirror_dataset(args.data, out / "data")
    workdir = out / "workdir"
    workdir.mkdir(exist_ok=True)
    os.chdir(workdir)

    tune_dir = out / "runs" / "tune"
    wall = time.perf_counter()
    YOLO(args.model).tune(
        data=str(data_yaml),
        epochs=args.epochs,
        iterations=args.iterations,
        imgsz=args.imgsz,
        batch=args.batch,
        fraction=args.fraction,
        seed=args.seed,
        workers=args.workers,
        device="cpu",
        pretrained=False,
        amp=False,
        plots=False,
        save=False,
        val=True,
        project=str(out / "runs"),
        name="tune",
        exist_ok=True,
        resume=tune_dir.exists(),
    )
    wall = time.perf_counter() - wall

    records = [
        json.loads(line)
        for line in (tune_dir / "tune_results.ndjson").read_text().splitlines()
        if line.strip()
    ]
    best_src = tune_dir / "best_hyperparameters.yaml"
    best = yaml.safe_load(best_src.read_text())
    shutil.copyfile(best_src, out / "best_hyperparameters.yaml")
    result = {
        "system": "ultralytics-tune",
        "model": args.model,
        "data": str(Path(args.data).resolve()),
        "imgsz": args.imgsz,
        "epochs_per_iteration": args.epochs,
        "iterations": len(records),
        "fraction": args.fraction,
        "batch": args.batch,
        "seed": args.seed,
        "wall_seconds_this_invocation": round(wall, 1),
        "fitness": [r.get("fitness") for r in records],
        "best_fitness": max((r.get("fitness") or 0.0) for r in records),
        "best_hyperparameters": best,
        "records": records,
        "ultralytics_version": ultralytics.__version__,
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "command": command,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"iterations={len(records)} best_fitness={result['best_fitness']} -> {out}")
    return result


if __name__ == "__main__":
    main()
