"""``detforge export``: weights -> ONNX or OpenVINO IR, checked against PyTorch on real images."""

from __future__ import annotations

from collections.abc import Sequence

from .spec import REQUIRED, Arg, Command, parse

__all__ = ["COMMAND", "run"]

FORMATS = ("onnx", "openvino")
COMMAND = Command(
    "export",
    "Export weights to ONNX, or to an OpenVINO IR converted from it (class names, strides, "
    "input size and letterbox in its metadata), and check it against the PyTorch model on real "
    "images: export_parity.json beside it; a failed check keeps the file as "
    "<name>.parity-failed.onnx (.xml) and exits with status 2.",
    "detforge export weights=best.pt [format=onnx|openvino] [imgsz=640] [dynamic=true] [nms=false] "
    "[opset=17] [simplify=false] [source=images/] [conf=0.25] [iou=0.7] [max_det=300]",
    (
        Arg("weights", str, REQUIRED, "checkpoint to export",
            example="weights=runs/train/weights/best.pt"),
        Arg("format", str, "onnx", "export format: onnx, or openvino (pip install "
            "'detforge[openvino]')", check=lambda v: v in FORMATS, rule="must be onnx or openvino"),
        Arg("out", str, None, "output file (default: the weights' name with .onnx, or .xml for "
            "openvino)"),
        Arg("dynamic", bool, True, "free batch size, height and width"),
        Arg("nms", bool, False, "class-aware NMS in the graph (conf, iou, max_det as inputs)"),
        Arg("half", bool, False, "fp16 graph (rejected on the CPU: cannot be parity-checked)"),
        Arg("opset", int, 17, "ONNX opset", check=lambda v: v >= 11, rule="must be at least 11"),
        Arg("simplify", bool, False, "simplify the graph with onnxslim or onnxsim (installed)"),
        Arg("source", str, None, "images of the parity check (default: the val split's first)"),
        Arg("n", int, 8, "number of parity images", check=lambda v: v > 0,
            rule="must be positive"),
    ),
)  # fmt: skip
ALIASES = {"conf": "predict.conf", "iou": "predict.iou", "max_det": "predict.max_det"}


def run(args: Sequence[str]) -> int:
    from ..api import config_from_checkpoint
    from ..export.onnx import export_onnx
    from ..export.openvino import export_openvino
    from .predict import resolve_source

    p = parse(COMMAND, args)
    s = p.special
    cfg = config_from_checkpoint(s["weights"], p.settings, ALIASES)
    images = resolve_source(s["source"]) if s["source"] else None
    export = export_openvino if s["format"] == "openvino" else export_onnx
    result = export(
        cfg, s["weights"], s["out"], cfg.train.imgsz, s["dynamic"], s["nms"], s["half"],
        s["opset"], s["simplify"], images, s["n"],
    )  # fmt: skip
    print(result.parity.summary())
    print(f"exported {result.path} (parity report {result.parity_path})")
    return 0
