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

__all__ = ["COMMAND", "run", "run_cam", "run_class_cam"]

COMMAND = Command(
    "cam",
    "Attention maps overlaid on images, written to the run folder (runs/cam). Detectors: "
    "EigenCAM (the default: gradient-free, one map per image, all detections drawn) or Grad-CAM "
    "(one map per detection, explaining its pre-NMS class score; <image>_box<i>.jpg). "
    "Classifiers: Grad-CAM (the default) of the predicted class or of class=, or EigenCAM; one "
    "<image>.jpg each and a line per image in cam.jsonl (class, probability). Needs the [cam] "
    "extra.",
    "detforge cam weights=best.pt source=<image|folder|glob> [method=eigencam|gradcam] "
    "[layer=NAME[,NAME]] [box=i | topk=3] [conf=0.25] [class=NAME|INDEX]",
    (
        Arg("weights", str, REQUIRED, "checkpoint (.pt)", example="weights=best.pt"),
        Arg("source", str, REQUIRED, "an image, a folder (recursive) or a glob pattern"),
        Arg("method", str, None, "eigencam or gradcam (default: eigencam for a detector, "
            "gradcam for a classifier)",
            check=lambda v: v in ("eigencam", "gradcam"), rule="must be eigencam or gradcam"),
        Arg("layer", list, None, "module name(s) from model.named_modules() (default: a "
            "detector's neck outputs, Grad-CAM the one at each box's level; a classifier's last "
            "spatial stage)", example="layer=neck.bu.4"),
        Arg("box", int, None, "detector, Grad-CAM: only detection i (0 = best score)",
            check=lambda v: v >= 0, rule="must be >= 0"),
        Arg("topk", int, None, "detector, Grad-CAM: maps for the best k detections (when box= "
            "is not given; default 3)", check=lambda v: v > 0, rule="must be positive"),
        Arg("class", str, None, "classifier, Grad-CAM: the class explained, by name or index "
            "(default: the predicted class)", example="class=cat"),
    ),
)  # fmt: skip
ALIASES = {"conf": "predict.conf", "iou": "predict.iou", "max_det": "predict.max_det"}
_DETECT_ONLY = ("box", "topk")


def run(args: Sequence[str]) -> int:
    from ..api import config_from_checkpoint
    from ..engine.checkpoint import checkpoint_task, load_checkpoint

    p = parse(COMMAND, args)
    s = p.special
    if str(s["weights"]).lower().endswith((".onnx", ".xml")):
        raise ConfigError("cam: weights= must be a .pt checkpoint (maps need the PyTorch model)")
    task = checkpoint_task(load_checkpoint(s["weights"]))
    if task == "classify":
        foreign = [f"{k}=" for k in _DETECT_ONLY if s[k] is not None]
        foreign += [a.split("=")[0] + "=" for a in p.settings
                    if a.split("=")[0] in (*ALIASES, *ALIASES.values())]  # fmt: skip
        if foreign:
            raise ConfigError(f"cam: {', '.join(foreign)} apply to detectors; {s['weights']} "
                              "is a classifier (choose its class with class=)")  # fmt: skip
        method = s["method"] or "gradcam"
        if method == "eigencam" and s["class"] is not None:
            raise ConfigError("cam: class= picks the class Grad-CAM explains; EigenCAM has none")
        cfg = config_from_checkpoint(s["weights"], ["train.name=cam", *p.settings])
        run_class_cam(cfg, s["weights"], s["source"], method, s["layer"], s["class"])
        return 0
    if s["class"] is not None:
        raise ConfigError(f"cam: class= applies to classifiers; {s['weights']} is a detector "
                          "(pick a detection with box=)")  # fmt: skip
    method = s["method"] or "eigencam"
    if method == "eigencam" and s["box"] is not None:
        raise ConfigError("cam: box= picks a detection for method=gradcam; EigenCAM has one map")
    cfg = config_from_checkpoint(s["weights"], ["train.name=cam", *p.settings], ALIASES)
    topk = 3 if s["topk"] is None else s["topk"]
    run_cam(cfg, s["weights"], s["source"], method, s["layer"], s["box"], topk)
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


def run_class_cam(cfg, weights: str, source: str, method: str, layers: list[str] | None,
                  cls: str | None) -> Path:  # fmt: skip
    """A classifier's map per image into a new run folder, with ``cam.jsonl``: one line per
    image (file, output, method, layers, class and probability explained, prediction)."""
    import json

    import torch

    from ..cam.classify import class_overlay, classifier_layers, classifier_maps, resolve_class
    from ..cam.maps import check_layer_outputs
    from ..cam.run import write_overlay
    from ..data.images import read_image
    from ..engine.classify_infer import load_classifier
    from ..infer.device import select_device
    from ..utils.atomic import write_text_atomic
    from ..utils.rundir import make_run_dir, unique_output_names
    from .predict import resolve_source

    files = resolve_source(source)
    model, names = load_classifier(weights, select_device(cfg.train.device))
    target = None if cls is None else resolve_class(cls, names)
    imgsz = cfg.train.imgsz
    if layers:  # an unknown or unusable layer fails before the run folder is made
        x = torch.zeros(1, 3, imgsz, imgsz, device=next(model.parameters()).device)
        check_layer_outputs(model, classifier_layers(model, layers, imgsz), layers, x)
    out = make_run_dir(cfg.train.project, cfg.train.name, cfg.train.exist_ok)
    records, skipped = [], 0
    for f, name in zip(files, unique_output_names(files), strict=True):
        try:
            img = read_image(f)
        except (DataError, OSError) as e:
            log.warning("skipped an unreadable image: %s", e if os.fspath(f) in str(e) else f)
            skipped += 1
            continue
        cam = classifier_maps(model, img, imgsz, method, layers, target)
        path = write_overlay(out / f"{name}.jpg", class_overlay(img, cam, names))
        records.append({
            "file": str(f), "output": path.name, "method": method, "layers": cam.layers,
            "class": None if cam.cls is None else names[cam.cls], "class_index": cam.cls,
            "probability": cam.prob, "predicted": names[cam.predicted],
            "predicted_probability": cam.predicted_prob,
        })  # fmt: skip
    write_text_atomic(out / "cam.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    print(f"{len(records)} {method} map(s) of {len(files) - skipped} images "
          f"({skipped} unreadable); results in {out}")  # fmt: skip
    return out
