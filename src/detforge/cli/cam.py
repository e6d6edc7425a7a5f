"""``detforge cam``: attention maps (EigenCAM or Grad-CAM) overlaid on images, in a run folder."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from ..config.fields import ConfigError
from ..data.errors import DataError
from .spec import REQUIRED, Arg, Command, parse

log = logging.getLogger("detforge")

__all__ = ["COMMAND", "run", "run_cam"]

COMMAND = Command(
    "cam",
    "Attention maps overlaid on images, written to the run folder (runs/cam): EigenCAM "
    "(gradient-free, one map per image, all detections drawn) or Grad-CAM (one map per "
    "detection, explaining its pre-NMS class score; <image>_box<i>.jpg). Needs the [cam] extra.",
    "detforge cam weights=best.pt source=<image|folder|glob> [method=eigencam|gradcam] "
    "[layer=NAME[,NAME]] [box=i | topk=3] [conf=0.25]",
    (
        Arg("weights", str, REQUIRED, "checkpoint (.pt)", example="weights=best.pt"),
        Arg("source", str, REQUIRED, "an image, a folder (recursive) or a glob pattern"),
        Arg("method", str, "eigencam", "eigencam or gradcam",
            check=lambda v: v in ("eigencam", "gradcam"), rule="must be eigencam or gradcam"),
        Arg("layer", list, None, "module name(s) from model.named_modules() (default: the "
            "neck outputs; Grad-CAM: the one at each box's level)",
            example="layer=neck.bu.4"),
        Arg("box", int, None, "Grad-CAM: only detection i (0 = best score)",
            check=lambda v: v >= 0, rule="must be >= 0"),
        Arg("topk", int, 3, "Grad-CAM: maps for the best k detections (when box= is not given)",
            check=lambda v: v > 0, rule="must be positive"),
    ),
)  # fmt: skip
ALIASES = {"conf": "predict.conf", "iou": "predict.iou", "max_det": "predict.max_det"}


def run(args: Sequence[str]) -> int:
    from ..api import config_from_checkpoint

    p = parse(COMMAND, args)
    s = p.special
    if str(s["weights"]).lower().endswith(".onnx"):
        raise ConfigError("cam: weights= must be a .pt checkpoint (maps need the PyTorch model)")
    if s["method"] == "eigencam" and s["box"] is not None:
        raise ConfigError("cam: box= picks a detection for method=gradcam; EigenCAM has one map")
    cfg = config_from_checkpoint(s["weights"], ["train.name=cam", *p.settings], ALIASES)
    run_cam(cfg, s["weights"], s["source"], s["method"], s["layer"], s["box"], s["topk"])
    return 0


def run_cam(cfg, weights: str, source: str, method: str, layers: list[str] | None,
            box: int | None, topk: int) -> Path:  # fmt: skip
    """Write one overlay per image (EigenCAM) or per explained detection (Grad-CAM) into a new
    run folder; returns it."""
    from ..cam.run import detector_maps, overlay, write_overlay
    from ..cam.targets import find_layers
    from ..data.images import read_image
    from ..engine.checkpoint import load_checkpoint, model_from_checkpoint
    from ..infer.device import select_device
    from ..utils.rundir import make_run_dir, unique_output_names
    from .predict import resolve_source

    files = resolve_source(source)
    ckpt = load_checkpoint(weights)
    if ckpt["model_spec"].get("arch") == "torchvision":
        raise ConfigError(
            f"cam: {weights} is model {ckpt['model_spec']['name']!r}, a torchvision detector; "
            "attention maps cover detforge's YOLO models"
        )
    model = model_from_checkpoint(ckpt, str(weights)).eval().to(select_device(cfg.train.device))
    names = ckpt["names"]
    if layers:
        find_layers(model, layers)  # an unknown name fails before the run folder is made
    out = make_run_dir(cfg.train.project, cfg.train.name, cfg.train.exist_ok)
    p, written, skipped = cfg.predict, 0, 0
    for f, name in zip(files, unique_output_names(files), strict=True):
        try:
            img = read_image(f)
        except (DataError, OSError) as e:
            log.warning("skipped an unreadable image: %s", e if os.fspath(f) in str(e) else f)
            skipped += 1
            continue
        maps = detector_maps(
            model, img, cfg.train.imgsz, method, layers, box, topk, p.conf, p.iou, p.max_det
        )
        if method == "gradcam" and not maps:
            log.info("%s: no detection%s above conf=%g, no Grad-CAM map", f,
                     f" {box}" if box is not None else "", p.conf)  # fmt: skip
        for cam in maps:
            stem = name if cam.box is None else f"{name}_box{cam.box}"
            write_overlay(out / f"{stem}.jpg", overlay(img, cam, names))
            written += 1
        log.info("%s: %d map(s), layer(s) %s", f, len(maps),
                 ", ".join(sorted({n for c in maps for n in c.layers})) or "-")  # fmt: skip
    print(f"{written} {method} map(s) of {len(files) - skipped} images "
          f"({skipped} unreadable); results in {out}")  # fmt: skip
    return out
