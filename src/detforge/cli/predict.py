"""``detforge predict``: detect objects in images; write annotated images, YOLO txt, COCO json."""

from __future__ import annotations

import glob
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..config import RunConfig
from ..config.fields import ConfigError
from ..data.errors import DataError
from ..engine.rundir import make_run_dir, write_text_atomic
from ..report.draw import draw_detections
from ..utils.rundir import unique_output_names
from .spec import REQUIRED, Arg, Command, parse

log = logging.getLogger("detforge")

__all__ = ["COMMAND", "run", "resolve_source", "run_predict", "run_predict_video"]

COMMAND = Command(
    "predict",
    "Detect objects in images (annotated images, YOLO txt labels and COCO json in the run folder) "
    "or in a video, stream or camera (annotated video and one JSON line per frame).",
    "detforge predict weights=best.pt source=<image|folder|glob|video.mp4|rtsp://...|0> "
    "[conf=0.25] [vid_stride=1] [settings]",
    (
        Arg("weights", str, REQUIRED, "checkpoint(s), comma-separated for an ensemble",
            example="weights=runs/train/weights/best.pt"),
        Arg("source", str, REQUIRED,
            "an image, a folder (recursive), a glob pattern, a video file, a stream URL "
            "(rtsp://, rtmp://, http://) or a camera index",
            example="source=images/ or source='*.jpg'"),
        Arg("vid_stride", int, 1, "videos: predict every N-th frame", check=lambda v: v >= 1,
            rule="must be at least 1"),
    ),
)  # fmt: skip
PREDICT_BATCH = 8  # images per forward pass (letterboxed to one shared canvas, so any mix batches)
ALIASES = {
    "conf": "predict.conf",
    "iou": "predict.iou",
    "max_det": "predict.max_det",
    "augment": "predict.augment",
    "precision": "predict.precision",
    "rect": "predict.rect",
    "name": "train.name",
}


def run(args: Sequence[str]) -> int:
    from ..api import config_from_checkpoint
    from .val import weights_list

    p = parse(COMMAND, args)
    weights = weights_list(p.special["weights"])
    cfg = config_from_checkpoint(weights[0], ["train.name=predict", *p.settings], ALIASES)
    source, stride = p.special["source"], p.special["vid_stride"]
    from ..serve.video import is_video_source

    if cfg.train.task == "classify":
        if len(weights) != 1 or is_video_source(source):
            raise ConfigError("predict: a classifier takes one checkpoint and image files")
        run_predict_classes(cfg, weights[0], source)
        return 0
    if is_video_source(source):
        return 130 if run_predict_video(cfg, weights, source, stride).interrupted else 0
    if stride != 1:
        raise ConfigError(f"vid_stride={stride}: applies to videos, streams and cameras only")
    run_predict(cfg, weights, source)
    return 0


def run_predict_classes(cfg: RunConfig, weights: str, source: str) -> list:
    """Print each image's top classes with their probabilities and the inference time."""
    from ..config.schema import PredictSection
    from ..engine.classify_infer import predict_classes

    for key, default in vars(PredictSection()).items():
        if getattr(cfg.predict, key) != default:
            raise ConfigError(f"predict.{key}: applies to detectors; {weights} is a classifier")
    preds = predict_classes(cfg, weights, resolve_source(source))
    for p in preds:
        top = "  ".join(f"{name} {prob:.3f}" for name, prob in p.top)
        print(f"{p.file}: {top}  ({p.ms:.1f} ms)")
    return preds


def resolve_source(source: str) -> list[Path]:
    """An image file, a folder (searched recursively) or a glob pattern -> sorted image paths."""
    from ..data.datayaml import IMAGE_SUFFIXES

    p = Path(source)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = [f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()]
    else:
        files = [Path(f) for f in glob.glob(source, recursive=True)]
        files = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()]
    if not files:
        raise ConfigError(f"source: no images found at '{source}'")
    return sorted(files)


def _load(cfg: RunConfig, weights: str | list[str]):
    """The detector (ensembled when several weights) and its test-time augmentation."""
    from ..api import Detector
    from ..infer.device import resolve_precision, select_device
    from ..infer.tta import ensemble_kwargs

    weights = [weights] if isinstance(weights, str) else list(weights)

    # a precision this device lacks is named by its setting before any weights load
    resolve_precision(cfg.predict.precision, select_device(cfg.train.device))
    kw = {"device": cfg.train.device, "imgsz": cfg.train.imgsz, "amp": cfg.predict.precision}
    det = Detector.load(weights[0], **kw)
    for w in weights[1:]:
        det.add_ensemble_member(Detector.load(w, **kw))
    return det, ensemble_kwargs(cfg.tta, cfg.predict.augment, len(weights))


def run_predict_video(cfg: RunConfig, weights: str | list[str], source: str, stride: int = 1):
    """Predict on a video file, stream or camera; returns the
    :class:`~detforge.serve.video.VideoSummary` (printed)."""
    from ..serve.video import open_video, predict_video

    cap, info = open_video(source)  # a source that cannot be opened fails before any loading
    try:
        det, tta = _load(cfg, weights)
    except BaseException:
        cap.release()
        raise
    out = make_run_dir(cfg.train.project, cfg.train.name, cfg.train.exist_ok)
    p = cfg.predict
    if p.save_txt:
        (out / "labels").mkdir(exist_ok=True)

    def predict(frames: list[np.ndarray]):
        return det.predict(frames, conf=p.conf, iou=p.iou, max_det=p.max_det,
                           batch=PREDICT_BATCH, tta=tta, rect=p.rect)  # fmt: skip

    summary = predict_video(
        cap, info, predict, out, stride, PREDICT_BATCH, save_video=p.save_images,
        save_jsonl=p.save_json, labels_dir=out / "labels" if p.save_txt else None,
    )  # fmt: skip
    print(f"{summary.line()}; results in {out}")
    return summary


def run_predict(cfg: RunConfig, weights: str | list[str], source: str) -> Path:
    from ..data.images import read_image

    files = resolve_source(source)
    det, tta = _load(cfg, weights)
    out = make_run_dir(cfg.train.project, cfg.train.name, cfg.train.exist_ok)
    p = cfg.predict
    if p.save_txt:
        (out / "labels").mkdir(exist_ok=True)
    results, latencies, skipped = [], [], []
    names = unique_output_names(files)  # a.jpg and a.png, x/a.jpg and y/a.jpg: no overwrites
    for start in range(0, len(files), PREDICT_BATCH):
        chunk = []
        for i in range(start, min(start + PREDICT_BATCH, len(files))):
            try:
                chunk.append((i, read_image(files[i])))
            except (DataError, OSError) as e:  # as training does: skip it, say so, go on
                f = files[i]
                why = str(e) if os.fspath(f) in str(e) else f"{f}: {e}"
                log.warning("skipped an unreadable image: %s", why)
                skipped.append(os.fspath(f))
        if not chunk:
            continue
        preds = det.predict(
            [img for _, img in chunk], conf=p.conf, iou=p.iou, max_det=p.max_det,
            batch=PREDICT_BATCH, tta=tta, rect=p.rect,
        )  # fmt: skip
        for (i, img), pred in zip(chunk, preds, strict=True):
            f, name = files[i], names[i]
            results += _write_one(out, p, f, name, i, img, pred)
            latencies.append(pred.latency_ms)
    if p.save_json:
        write_text_atomic(out / "predictions.json", json.dumps(results))
    speed = (
        f", mean latency {np.mean(latencies):.1f} ms/image (median {np.median(latencies):.1f} ms)"
        if latencies
        else ""
    )
    print(f"{len(latencies)} images, {len(skipped)} skipped (unreadable){speed}; results in {out}")
    return out


def _write_one(out: Path, p, f: Path, name: str, i: int, img: np.ndarray, pred) -> list[dict]:
    """Log one image's detections, write its annotated image and label file (as configured);
    return its COCO results rows."""
    results = []
    log.info("%s: %d objects, %.1f ms", f, len(pred), pred.latency_ms)
    if p.save_images:
        cv2.imwrite(str(out / f"{name}.jpg"), draw_detections(img, pred))
    if p.save_txt:
        from ..infer.postprocess import yolo_txt_lines

        lines = yolo_txt_lines(pred.boxes, pred.scores, pred.classes, pred.shape)
        write_text_atomic(
            out / "labels" / f"{name}.txt", "\n".join(lines) + ("\n" if lines else "")
        )
    for (x1, y1, x2, y2), s, c in zip(pred.boxes, pred.scores, pred.classes, strict=True):
        results.append(
            {
                "image_id": i,
                "file_name": os.fspath(f),
                "output_name": name,  # of the annotated image and the label file
                "category_id": int(c) + 1,
                "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                "score": float(s),
            }
        )
    return results
