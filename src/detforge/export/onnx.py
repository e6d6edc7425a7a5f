"""``best.pt`` -> ``best.onnx``, with metadata, checked against PyTorch before it is kept.

The TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``) is used: it turns the
NMS step into the ONNX ``NonMaxSuppression`` op through a ``symbolic`` function and takes
``dynamic_axes`` directly, with no extra dependency (the torch.export-based exporter needs
onnxscript and a custom translation for the op). Its deprecation is not a risk to users of a
file it wrote: every file is checked by :func:`~detforge.export.parity.check_parity` before it is
kept.

The graph is written to a temporary file beside the target; when parity passes it is renamed to
the target, when it fails to ``<name>.parity-failed.onnx`` (kept for inspection, never under the
name a user would load) and :class:`ExportError` is raised. ``export_parity.json`` is written
beside it either way.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..config import RunConfig
from ..config.fields import ConfigError
from ..engine.checkpoint import checkpoint_task, load_checkpoint, model_from_checkpoint
from ..infer.runtime import META, ExportedModel, OnnxRuntimeModel
from ..models.fuse import fold_batchnorm
from ..utils.atomic import write_text_atomic
from .errors import ExportError
from .graph import ExportGraph, input_names, output_names
from .parity import ParityReport, check_parity

__all__ = [
    "ExportError", "ExportResult", "OnnxGraph", "check_settings", "export_onnx", "keep_if_parity",
    "parity_images", "write_onnx", "SIMPLIFIERS",
]  # fmt: skip

log = logging.getLogger("detforge")
SIMPLIFIERS = ("onnxslim", "onnxsim")
MIN_OPSET = 11  # NonMaxSuppression with the score threshold as an input


@dataclass
class ExportResult:
    path: Path  # the kept .onnx file
    parity_path: Path
    parity: ParityReport


def _simplify(path: Path) -> None:
    """Simplify the graph in place with the first installed simplifier."""
    import onnx

    name = next((m for m in SIMPLIFIERS if importlib.util.find_spec(m)), None)
    if name is None:
        raise ConfigError("simplify=true needs onnxslim or onnxsim: pip install onnxslim")
    model = onnx.load(str(path))
    if name == "onnxslim":
        import onnxslim

        model = onnxslim.slim(model)
    else:
        import onnxsim

        model, ok = onnxsim.simplify(model)
        if not ok:
            raise ExportError(f"onnxsim could not check the simplified graph of {path}")
    onnx.save(model, str(path))


def _write_metadata(path: Path, meta: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = META + k, v
    onnx.save(model, str(path))


def parity_images(cfg: RunConfig, n: int) -> list[Path]:
    """The first ``n`` images of the configured data's val split."""
    from ..data.datayaml import load_data_yaml
    from ..engine.setup_data import build_val_set, resolve_data_yaml

    spec = load_data_yaml(resolve_data_yaml(cfg))
    files = list(build_val_set(cfg, spec, "val").image_files)[:n]
    if not files:
        raise ConfigError("the val split has no images for the parity check: give source=")
    return files


@dataclass
class OnnxGraph:
    """An ONNX file written by :func:`write_onnx`, with what its parity check needs."""

    reference: nn.Module  # the PyTorch model as loaded (BatchNorm not folded), eval mode
    size: int  # the input size (imgsz)
    stride: int  # the model's largest stride
    meta: dict[str, str]  # the file's metadata, keys without the ``detforge.`` prefix


def check_settings(half: bool, opset: int, simplify: bool) -> None:
    """Refuse export settings that cannot act, before anything is written."""
    if half:
        # onnxruntime's CPU provider runs few fp16 kernels and PyTorch's CPU fp16 convolutions
        # are not the arithmetic a GPU would use, so an fp16 graph cannot be proven here
        raise ConfigError(
            "half=true: an fp16 graph cannot be parity-checked on the CPU (onnxruntime's CPU "
            "provider has no fp16 kernels for most ops); export fp32 (half=false)"
        )
    if opset < MIN_OPSET:
        raise ConfigError(f"opset: must be at least {MIN_OPSET} (NonMaxSuppression), got {opset}")
    if simplify and not any(importlib.util.find_spec(m) for m in SIMPLIFIERS):
        raise ConfigError("simplify=true needs onnxslim or onnxsim installed: pip install onnxslim")
    if importlib.util.find_spec("onnx") is None:
        raise ConfigError("export needs onnx: pip install 'detforge[export]' (or [openvino])")


def write_onnx(
    cfg: RunConfig,
    weights: str | os.PathLike,
    path: Path,
    imgsz: int | None = None,
    dynamic: bool = True,
    nms: bool = False,
    half: bool = False,
    opset: int = 17,
    simplify: bool = False,
) -> OnnxGraph:
    """Write ``weights`` as an ONNX graph with detforge's metadata to ``path`` (no parity check;
    see :func:`export_onnx` for the arguments). The NMS inputs' meaning comes from
    ``cfg.predict``."""
    check_settings(half, opset, simplify)
    ckpt = load_checkpoint(weights)
    if checkpoint_task(ckpt) == "classify":
        raise ConfigError(f"weights: {weights} is an image classifier; export serves detectors")
    if ckpt["model_spec"].get("arch") == "torchvision":
        raise ConfigError(
            f"weights: {weights} is model {ckpt['model_spec']['name']!r}, a torchvision detector; "
            "ONNX export covers detforge's YOLO models only (predict and val take the .pt)"
        )
    reference = model_from_checkpoint(ckpt, str(weights)).eval()
    size = imgsz or cfg.train.imgsz
    if size % reference.max_stride:
        raise ConfigError(f"imgsz: must be a multiple of {reference.max_stride}, got {size}")
    model = copy.deepcopy(reference)
    fold_batchnorm(model)
    p = cfg.predict
    x = torch.zeros(1, 3, size, size)
    args: tuple = (x,)
    if nms:
        args = (x, torch.tensor([p.conf]), torch.tensor([p.iou]), torch.tensor([p.max_det]))
    axes = {"images": {0: "batch", 2: "height", 3: "width"}} if dynamic else None
    with warnings.catch_warnings():  # tracer notes on the NMS step; parity checks the result
        warnings.simplefilter("ignore")
        torch.onnx.export(
            ExportGraph(model, nms).eval(), args, str(path), input_names=input_names(nms),
            output_names=output_names(nms), dynamic_axes=axes, opset_version=opset,
            dynamo=False,
        )  # fmt: skip
    if simplify:
        _simplify(path)
    meta = {
        "names": json.dumps(list(ckpt["names"])),
        "strides": json.dumps(list(model.strides)),
        "imgsz": str(size),
        "reg_max": str(model.reg_max),
        "nms": "true" if nms else "false",
        "dynamic": "true" if dynamic else "false",
        "input": "images: (B, 3, H, W) float32 RGB, pixel / 255 (no mean or std)",
        # a dynamic file takes any H, W: predict.rect pads to the smallest rectangle of
        # stride multiples; a fixed one only the square
        "letterbox": json.dumps({"long_side": size, "pad_value": 114, "centred": True,
                                 "square": not dynamic, "stride": model.max_stride}),
        "outputs": ", ".join(output_names(nms)),
        "source": os.fspath(weights),
    }  # fmt: skip
    _write_metadata(path, meta)
    return OnnxGraph(reference, size, int(model.max_stride), meta)


def keep_if_parity(
    cfg: RunConfig,
    graph: OnnxGraph,
    runtime: ExportedModel,
    moves: dict[Path, Path],
    key: str,
    dynamic: bool,
    images: list[Path] | None,
    n_images: int,
    batch: int,
) -> ExportResult:
    """Check ``runtime`` (the exported file, under temporary names) against PyTorch, write
    ``export_parity.json`` beside the target (``{key: target, ...report}``), then rename each
    temporary file to its target (``moves``: temporary -> target; the first target is the
    model's file), or, when parity fails, to ``<stem>.parity-failed<suffix>`` and raise."""
    p = cfg.predict
    files = list(images)[:n_images] if images else parity_images(cfg, n_images)
    report = check_parity(
        graph.reference, runtime, files, graph.size, p.conf, p.iou, p.max_det,
        batch if dynamic else 1, graph.stride if dynamic else None,
    )  # fmt: skip
    target = next(iter(moves.values()))
    parity_path = target.with_name("export_parity.json")
    write_text_atomic(parity_path, json.dumps({key: str(target), **report.as_dict()}, indent=2))
    if not report.passed:
        for tmp, dest in moves.items():
            os.replace(tmp, dest.with_name(dest.stem + ".parity-failed" + dest.suffix))
        failed = target.with_name(target.stem + ".parity-failed" + target.suffix)
        raise ExportError(f"parity check failed, model kept as {failed}: {report.failures[0]} "
                          f"(details in {parity_path})")  # fmt: skip
    for tmp, dest in moves.items():
        os.replace(tmp, dest)
    return ExportResult(target, parity_path, report)


def export_onnx(
    cfg: RunConfig,
    weights: str | os.PathLike,
    out: str | os.PathLike | None = None,
    imgsz: int | None = None,
    dynamic: bool = True,
    nms: bool = False,
    half: bool = False,
    opset: int = 17,
    simplify: bool = False,
    images: list[Path] | None = None,
    n_images: int = 8,
    batch: int = 4,
) -> ExportResult:
    """Export ``weights`` to ONNX and check it; thresholds of the parity check (and of the NMS
    inputs' meaning) come from ``cfg.predict`` (conf, iou, max_det).

    dynamic: batch, height and width are free (else fixed at 1 x 3 x imgsz x imgsz); parity is
    then checked on rectangular batches, as ``predict.rect`` feeds them.
    images: the parity check's images (default: the first ``n_images`` of the val split).
    batch: images per parity batch when ``dynamic`` (1 otherwise).
    """
    check_settings(half, opset, simplify)
    target = Path(out) if out else Path(weights).with_suffix(".onnx")
    if target.suffix.lower() != ".onnx":
        raise ConfigError(f"out: the file name must end in .onnx, got {target}")
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        graph = write_onnx(cfg, weights, tmp, imgsz, dynamic, nms, half, opset, simplify)
        return keep_if_parity(cfg, graph, OnnxRuntimeModel(tmp), {tmp: target}, "onnx", dynamic,
                              images, n_images, batch)  # fmt: skip
    finally:  # an error on the way (no images, unwritable folder) leaves no temp file behind
        tmp.unlink(missing_ok=True)
