"""``detforge serve``: a detector behind HTTP (POST /predict) with a browser page at /."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ..config.fields import ConfigError
from .spec import REQUIRED, Arg, Command, parse

__all__ = ["COMMAND", "run"]

log = logging.getLogger("detforge")

COMMAND = Command(
    "serve",
    "Serve a detector over HTTP (extra [serve]): POST /predict takes an image and answers JSON "
    "boxes; / is a page to drop an image and filter its boxes with a confidence slider.",
    "detforge serve weights=best.pt [host=127.0.0.1] [port=8000] [conf=0.25] [max_upload_mb=10]",
    (
        Arg("weights", str, REQUIRED, "checkpoint (.pt) or exported model (.onnx, .xml)",
            example="weights=runs/train/weights/best.pt"),
        Arg("host", str, "127.0.0.1", "address to listen on (0.0.0.0: every interface)"),
        Arg("port", int, 8000, "port to listen on", check=lambda v: 0 < v < 65536,
            rule="must be in 1..65535"),
        Arg("max_upload_mb", float, 10.0, "largest upload accepted (413 above it)",
            check=lambda v: v > 0, rule="must be positive"),
    ),
)  # fmt: skip
ALIASES = {"conf": "predict.conf", "iou": "predict.iou", "max_det": "predict.max_det"}
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def run(args: Sequence[str]) -> int:
    from ..api import Detector, config_from_checkpoint

    p = parse(COMMAND, args)
    s = p.special
    try:
        import uvicorn

        from ..serve.app import create_app
    except ImportError as e:
        raise ConfigError(
            f"serve needs FastAPI, uvicorn and python-multipart ({e.name} is missing): "
            "pip install 'detforge[serve]'"
        ) from e
    cfg = config_from_checkpoint(s["weights"], p.settings, ALIASES)
    det = Detector.load(
        s["weights"], device=cfg.train.device, imgsz=cfg.train.imgsz, amp=cfg.predict.precision
    )
    pc = cfg.predict

    def predict(img, conf: float):
        return det.predict(img, conf=conf, iou=pc.iou, max_det=pc.max_det, rect=pc.rect)[0]

    app = create_app(predict, det.names, Path(s["weights"]).name, pc.conf, s["max_upload_mb"])
    if s["host"] not in LOOPBACK:
        log.warning(
            "serving on %s: anyone who can reach this machine can upload images and use the "
            "model (there is no authentication); host=127.0.0.1 keeps it to this machine",
            s["host"],
        )
    print(f"detforge serve: {s['weights']} on http://{s['host']}:{s['port']}/", flush=True)
    uvicorn.run(app, host=s["host"], port=s["port"], log_level="warning")
    return 0
