"""Train an Ultralytics YOLO model from its yaml (no pretrained weights) on CPU, time the training
epochs, then predict on every val image with the last weights and write neutral predictions.

Run with the peer venv only (Ultralytics is AGPL-3.0 and never a detforge dependency):

    /work/peer/venv/bin/python bench/peer/ultralytics_train.py \
        --data ../shared/data/hituav/data.yaml --model yolo11n.yaml --imgsz 416 \
        --epochs 30 --batch 16 --seed 0 --workers 2 --out /tmp/peer/hituav-yolo11n-416

Smoke run: add `--fraction 0.1 --epochs 1 --imgsz 320`.

Writes into OUT_DIR:
    predictions.json   [{"file_name", "class" (0-based), "bbox" [left, top, w, h], "score"}],
                       boxes in original image pixels
    result.json        timings, images/s, peak RSS, params/GFLOPs, versions, exact command
    data/              symlink mirror of the dataset + data.yaml (labels/*.cache land here)
    runs/train, runs/val   the peer's own run folders (weights/last.pt, its predictions.json)
    yolo_config/       private Ultralytics settings + font; workdir/ the process's working folder

Training time is the sum of the epochs measured between the peer's `on_train_epoch_start` and
`on_train_epoch_end` callbacks: set-up, the validation the peer still runs after the final epoch
(even with val=False), checkpoint saving and the final evaluation are excluded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
import time
from pathlib import Path

import yaml

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
    p.add_argument("--model", default="yolo11n.yaml", help="model yaml known to Ultralytics")
    p.add_argument("--imgsz", type=int, default=416)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="asked for; the peer uses 0 on CPU")
    p.add_argument("--fraction", type=float, default=1.0, help="fraction of train images (smoke)")
    p.add_argument(
        "--hyp",
        help="YAML of extra train arguments (e.g. the tuner's best_hyperparameters.yaml)",
    )
    p.add_argument(
        "--save-every",
        type=int,
        default=0,
        help="keep the weights every N epochs and score each with the peer's val (0: off)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads while training (0: the peer's own choice, which on CPU is "
        "one less than the CPU count, at most 8: 1 thread on a 2-core machine)",
    )
    p.add_argument("--out", required=True, help="output folder (created)")
    return p.parse_args(argv)


class EpochTimer:
    """Peer callbacks that time each training epoch and remember the trainer."""

    def __init__(self) -> None:
        self.epoch_seconds: list[float] = []
        self.trainer = None
        self.threads = 0
        self._start = 0.0

    def on_train_start(self, trainer) -> None:
        self.trainer = trainer

    def on_train_epoch_start(self, trainer) -> None:
        import torch

        self.threads = torch.get_num_threads()  # what the epoch runs with
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer) -> None:
        self.epoch_seconds.append(time.perf_counter() - self._start)


class CheckpointKeeper:
    """Peer callback that copies ``last.pt`` every ``every`` epochs (after the peer saved it, so
    outside the epoch timer) to ``folder/epoch<N>.pt``, N counted from 1.

    The peer's own ``save_period`` names files by its 0-based epoch index and so saves after
    epochs 1, 6, 11, ...; this keeps epochs 5, 10, 15, ... like detforge's ``train.save_period``.
    """

    def __init__(self, every: int, folder: Path) -> None:
        self.every, self.folder = every, folder
        self.saved: dict[int, Path] = {}

    def on_model_save(self, trainer) -> None:
        done = trainer.epoch + 1
        if self.every and done % self.every == 0:
            self.folder.mkdir(parents=True, exist_ok=True)
            target = self.folder / f"epoch{done}.pt"
            shutil.copyfile(trainer.last, target)
            self.saved[done] = target


def predict_val(yolo_cls, weights: Path, data_yaml: Path, args, out: Path, name: str):
    """The peer's val of ``weights`` with the shared scoring settings: neutral predictions, the
    validator and the peer's own (not comparable) metrics."""
    evaluator = yolo_cls(weights)
    captured = {}
    evaluator.add_callback("on_val_end", lambda v: captured.setdefault("validator", v))
    metrics = evaluator.val(
        data=str(data_yaml),
        split="val",
        imgsz=args.imgsz,
        batch=args.batch,
        conf=0.001,
        iou=0.7,
        max_det=300,
        save_json=True,
        plots=False,
        device="cpu",
        workers=args.workers,
        project=str(out / "runs"),
        name=name,
        exist_ok=True,
    )
    validator = captured["validator"]
    preds = to_neutral(Path(validator.save_dir) / "predictions.json", list(validator.class_map))
    return preds, validator, metrics


def model_figures(yolo_cls, weights: Path, sizes: list[int]) -> dict:
    """Parameters and GFLOPs as the peer prints them, for the training graph and the fused one.

    The peer's start-of-training summary shows the unfused model; its val/predict summaries show
    the fused one (conv+bn merged), which is the figure Ultralytics usually publishes.
    """
    figures = {}
    for graph in ("unfused", "fused"):
        model = yolo_cls(weights)
        if graph == "fused":
            model.model.fuse(verbose=False)
        for size in sizes:
            n_layers, n_params, _, gflops = model.info(imgsz=size)
            figures[f"{graph}_{size}"] = {"layers": n_layers, "params": n_params, "gflops": gflops}
    return figures


def to_neutral(peer_json: Path, class_map: list[int]) -> list[dict]:
    """Convert the peer's COCO-style predictions to file_name / 0-based class records."""
    class_of = {category_id: i for i, category_id in enumerate(class_map)}
    return [
        {
            "file_name": d["file_name"],
            "class": class_of[d["category_id"]],
            "bbox": [float(v) for v in d["bbox"]],
            "score": float(d["score"]),
        }
        for d in json.loads(peer_json.read_text())
    ]


def summarize(preds: list[dict], n_val_images: int) -> dict:
    if not preds:
        return {"count": 0, "val_images": n_val_images}
    scores = sorted(p["score"] for p in preds)
    return {
        "count": len(preds),
        "val_images": n_val_images,
        "images_with_predictions": len({p["file_name"] for p in preds}),
        "score_max": scores[-1],
        "score_median": scores[len(scores) // 2],
        "left_min": min(p["bbox"][0] for p in preds),
        "top_min": min(p["bbox"][1] for p in preds),
        "right_max": max(p["bbox"][0] + p["bbox"][2] for p in preds),
        "bottom_max": max(p["bbox"][1] + p["bbox"][3] for p in preds),
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    command = shlex.join([sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]])
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    prepare_offline(out)

    import torch
    import ultralytics
    from ultralytics import YOLO

    disable_integrations(out)
    caches_before = source_caches(args.data)
    data_yaml = mirror_dataset(args.data, out / "data")
    workdir = out / "workdir"
    workdir.mkdir(exist_ok=True)
    os.chdir(workdir)  # anything the peer drops in the working folder stays in OUT_DIR

    hyp = yaml.safe_load(Path(args.hyp).read_text()) if args.hyp else {}
    if args.threads:  # the peer sets torch's thread count from this module global on CPU
        from ultralytics.utils import torch_utils

        torch_utils.NUM_THREADS = args.threads
    timer = EpochTimer()
    model = YOLO(args.model)
    for event in ("on_train_start", "on_train_epoch_start", "on_train_epoch_end"):
        model.add_callback(event, getattr(timer, event))
    saver = CheckpointKeeper(args.save_every, out / "checkpoints")
    model.add_callback("on_model_save", saver.on_model_save)
    wall = time.perf_counter()
    model.train(
        data=str(data_yaml),
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        seed=args.seed,
        workers=args.workers,
        fraction=args.fraction,
        device="cpu",
        pretrained=False,
        amp=False,
        val=False,
        plots=False,
        project=str(out / "runs"),
        name="train",
        exist_ok=True,
        **hyp,
    )
    train_wall = time.perf_counter() - wall
    rss_after_train = peak_rss_mib()
    trainer = timer.trainer
    train_images = len(trainer.train_loader.dataset)
    train_seconds = sum(timer.epoch_seconds)
    last = Path(trainer.last)

    info = model_figures(YOLO, last, sorted({args.imgsz, 640}))

    wall = time.perf_counter()
    preds, validator, metrics = predict_val(YOLO, last, data_yaml, args, out, "val")
    val_wall = time.perf_counter() - wall
    (out / "predictions.json").write_text(json.dumps(preds))
    checkpoints = {}
    for epoch, weights in sorted(saver.saved.items()):
        preds_n = predict_val(YOLO, weights, data_yaml, args, out, f"val_epoch{epoch}")[0]
        path = out / "checkpoints" / f"predictions_epoch{epoch}.json"
        path.write_text(json.dumps(preds_n))
        checkpoints[epoch] = {
            "weights": str(weights),
            "predictions": str(path),
            "train_seconds_cumulative": round(sum(timer.epoch_seconds[:epoch]), 3),
        }

    result = {
        "system": "ultralytics",
        "model": args.model,
        "data": str(Path(args.data).resolve()),
        "fraction": args.fraction,
        "train_images": train_images,
        "epochs": len(timer.epoch_seconds),
        "imgsz": args.imgsz,
        "batch": args.batch,
        "seed": args.seed,
        "hyp": hyp,
        "save_every": args.save_every,
        "checkpoints": checkpoints,
        "workers_asked": args.workers,
        "workers_used": trainer.train_loader.num_workers,
        "train_seconds": round(train_seconds, 3),
        "train_images_per_s": round(train_images * len(timer.epoch_seconds) / train_seconds, 3),
        "epoch_seconds": [round(s, 3) for s in timer.epoch_seconds],
        "train_wall_seconds": round(train_wall, 3),
        "val_wall_seconds": round(val_wall, 3),
        "peak_rss_mib_after_train": rss_after_train,
        "peak_rss_mib": peak_rss_mib(),
        "model_info": info,
        "params": info[f"unfused_{args.imgsz}"]["params"],
        "params_fused": info[f"fused_{args.imgsz}"]["params"],
        "gflops": round(info[f"unfused_{args.imgsz}"]["gflops"], 2),
        "gflops_640": round(info["unfused_640"]["gflops"], 2),
        "gflops_fused_640": round(info["fused_640"]["gflops"], 2),
        "predictions": summarize(preds, len(validator.dataloader.dataset)),
        "val_settings": {"conf": 0.001, "iou": 0.7, "max_det": 300, "rect": validator.args.rect},
        "peer_printed_metrics_not_comparable": {
            k: round(float(v), 5) for k, v in metrics.results_dict.items()
        },
        "last_weights": str(last),
        "peer_train_args": {k: str(v) for k, v in vars(trainer.args).items()},
        "ultralytics_version": ultralytics.__version__,
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_threads_training": timer.threads,
        "threads_asked": args.threads or None,
        "python_version": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "new_cache_files_in_source": sorted(source_caches(args.data) - caches_before),
        "stray_files_in_workdir": sorted(p.name for p in workdir.iterdir()),
        "command": command,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(
        f"train_images={train_images} epochs={result['epochs']} "
        f"train_seconds={train_seconds:.1f} train_images_per_s={result['train_images_per_s']:.2f} "
        f"params={result['params']} GFLOPs@{args.imgsz}={result['gflops']} "
        f"GFLOPs@640={result['gflops_640']} predictions={len(preds)} -> {out}"
    )
    return result


if __name__ == "__main__":
    main()
