"""``detforge benchmark``: latency, throughput and (with data) mAP per format and input size."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..config.fields import ConfigError
from .spec import REQUIRED, Arg, Command, parse

__all__ = ["COMMAND", "run"]

FORMATS = ("torch", "onnx", "openvino")
SUFFIX = {"onnx": ".onnx", "openvino": ".xml"}  # exported formats and their files
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
ALIASES = {"conf": "predict.conf", "iou": "predict.iou", "max_det": "predict.max_det"}
log = logging.getLogger("detforge")

COMMAND = Command(
    "benchmark",
    "Per-image latency at batch 1 (first call, then median and p90 after warm-up), images/s at "
    "batch 8 (detection at predict.conf, as detforge predict), and the val stats on data= when "
    "given (at eval.conf, as detforge val), for each format and input size. The ONNX and OpenVINO "
    "models are exported (and parity-checked) into a temporary folder at each size; openvino "
    "needs the [openvino] extra.",
    "detforge benchmark weights=best.pt [formats=torch,onnx] [imgsz=320,640] [data=data.yaml] "
    "[source=images/] [precision=fp32,bf16] [runs=20] [--json]",
    (
        Arg("weights", str, REQUIRED, "checkpoint (.pt)", example="weights=best.pt"),
        Arg("formats", list, ["torch", "onnx"], "formats to compare: torch, onnx, openvino",
            check=lambda v: bool(v) and set(v) <= set(FORMATS),
            rule="must be among torch, onnx, openvino"),
        Arg("imgsz", str, None, "input sizes, comma-separated (default: the checkpoint's)",
            example="imgsz=320,640"),
        Arg("source", str, None, "images to time (default: the val split's first 8)"),
        Arg("precision", list, None, "precisions of the torch format, comma-separated: fp32, "
            "bf16, fp16 (CUDA), auto (default: predict.precision); onnx and openvino run in "
            "fp32",
            check=lambda v: bool(v) and set(v) <= set(PRECISIONS),
            rule="must be fp32, bf16, fp16 and/or auto"),
        Arg("runs", int, 20, "timed calls at batch 1", check=lambda v: v > 0,
            rule="must be positive"),
        Arg("warmup", int, 3, "untimed first calls", check=lambda v: v > 0,
            rule="must be positive"),
    ),
    json=True,
)  # fmt: skip


def _sizes(text: str | None, default: int) -> list[int]:
    if text is None:
        return [default]
    values = text.split(",")
    try:
        sizes = [int(v) for v in values]
    except ValueError:
        raise ConfigError(f"benchmark: imgsz: expected integers, got {values!r}") from None
    if any(s <= 0 for s in sizes):
        raise ConfigError(f"benchmark: imgsz must be positive, got {values!r}")
    return sizes


def run(args: Sequence[str]) -> int:
    import torch

    from ..api import Detector, config_from_checkpoint
    from ..data.images import read_image
    from ..export.benchmark import format_table, time_detector
    from ..export.onnx import export_onnx, parity_images
    from ..export.openvino import export_openvino
    from .predict import resolve_source
    from .val import evaluate_weights

    p = parse(COMMAND, args)
    s = p.special
    weights = s["weights"]
    if weights.lower().endswith((".onnx", ".xml")):
        raise ConfigError(
            "benchmark: weights= must be a .pt checkpoint (the formats= files are exported from it)"
        )
    with_map = any(a.startswith("data=") or a.startswith("data.path=") for a in p.settings)
    cfg = config_from_checkpoint(weights, ["train.name=benchmark", *p.settings], ALIASES)
    files = resolve_source(s["source"])[:8] if s["source"] else parity_images(cfg, 8)
    images = [read_image(f) for f in files]
    precisions = s["precision"] or [cfg.predict.precision]
    runs = [(fmt, prec) for fmt in s["formats"]
            for prec in (precisions if fmt == "torch" else ["fp32"])]  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory(prefix="detforge-bench-") as tmp:
        for size in _sizes(s["imgsz"], cfg.train.imgsz):
            for fmt, prec in runs:
                path = weights
                if fmt in SUFFIX:
                    path = Path(tmp) / f"model-{size}{SUFFIX[fmt]}"
                    export = export_onnx if fmt == "onnx" else export_openvino
                    log.info(export(cfg, weights, path, size, images=files).parity.summary())
                det = Detector.load(path, device="cpu", imgsz=size, amp=prec)

                def predict(batch, n, det=det):
                    return det.predict(batch, conf=cfg.predict.conf, iou=cfg.predict.iou,
                                       max_det=cfg.predict.max_det, batch=n,
                                       rect=cfg.predict.rect)  # fmt: skip

                row = time_detector(predict, images, fmt, size, s["warmup"], s["runs"], prec)
                if with_map:  # evaluated in the precision timed (train.amp drives val)
                    amp = {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[
                        det.amp_dtype
                    ]
                    sized = config_from_checkpoint(
                        weights,
                        ["train.name=benchmark", *p.settings, f"imgsz={size}", f"amp={amp}"],
                        ALIASES,
                    )
                    stats = evaluate_weights(sized, [str(path)])[0].result.stats
                    row.map50_95, row.map50 = stats["map50_95"], stats["map50"]
                rows.append(row)
    if p.as_json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        print(format_table(rows))
    return 0
