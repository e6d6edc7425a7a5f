"""Exported models run through onnxruntime (``.onnx``) or OpenVINO (``.xml`` IR) behind the
interface of the PyTorch detector, so ``predict``, ``val`` and the Python API use one pre- and
post-processing for all of them.

The graph's names and metadata keys are defined here (the lower layer) and written by
:mod:`detforge.export`. A file from ``detforge export`` holds the class names, strides, input
size, normalisation and letterbox settings (ONNX: metadata props ``detforge.<key>``; OpenVINO IR:
rt_info ``detforge/<key>``); nothing else is needed to use it. :class:`ExportedModel` holds
everything but the runtime call; the subclasses only open the file and run it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..config.fields import ConfigError
from ..models.decode import decode_model_outputs
from .device import autocast
from .postprocess import Detections, postprocess

__all__ = [
    "INPUT_NAME",
    "NMS_INPUTS",
    "RAW_OUTPUTS",
    "DET_OUTPUTS",
    "META",
    "ExportedModel",
    "OnnxRuntimeModel",
    "OpenVinoModel",
    "is_onnx",
    "is_exported",
    "load_exported",
    "detect_batch",
]

INPUT_NAME = "images"
NMS_INPUTS = ("conf", "iou", "max_det")
RAW_OUTPUTS = ("boxes", "scores")
DET_OUTPUTS = ("det_boxes", "det_scores", "det_classes", "det_image")
META = "detforge."  # prefix of every metadata key detforge writes
REQUIRED_META = ("names", "strides", "imgsz", "nms")


def is_onnx(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(".onnx")


def is_exported(path: str | os.PathLike) -> bool:
    """An exported model (``.onnx`` or OpenVINO ``.xml``) rather than a PyTorch checkpoint."""
    return str(path).lower().endswith((".onnx", ".xml"))


def load_exported(path: str | os.PathLike, threads: int = 0) -> ExportedModel:
    """The runtime for an exported file, chosen by its suffix (see :func:`is_exported`)."""
    return OnnxRuntimeModel(path, threads) if is_onnx(path) else OpenVinoModel(path, threads)


def _existing(path: str | os.PathLike) -> Path:
    if not Path(path).is_file():
        raise ConfigError(f"weights: {path} does not exist")
    return Path(path)


class ExportedModel:
    """An exported detector run on the CPU in fp32 by a runtime (a subclass).

    ``detect(x, conf, iou, max_det)`` gives the same detections as the PyTorch model's decode ->
    :func:`~detforge.infer.postprocess.postprocess` (NMS in the graph or here, as exported);
    ``run(x)`` gives the graph's raw outputs.
    """

    runtime = ""  # the runtime's name, in messages

    def __init__(
        self, path: Path, meta: dict[str, str], shape: list[int | None], outputs: list[str]
    ):
        """meta: the file's metadata without the ``detforge.`` prefix; shape: the input's
        (B, 3, H, W), None where free; outputs: the graph's output names in order."""
        self.path = path
        missing = [k for k in REQUIRED_META if k not in meta]
        if missing:
            raise ConfigError(
                f"{path}: no detforge metadata ({', '.join(META + k for k in missing)}); "
                "export the model with detforge export"
            )
        self.metadata = meta
        self.output_names = outputs
        self.names: list[str] = json.loads(self.metadata["names"])
        self.strides = tuple(json.loads(self.metadata["strides"]))
        self.imgsz = int(self.metadata["imgsz"])
        self.nms = self.metadata["nms"] == "true"
        self.nc = len(self.names)
        self.batch = shape[0]
        self.hw = tuple(shape[2:]) if None not in shape[2:] else None

    def _infer(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The graph's outputs (in ``output_names`` order) for one feed."""
        raise NotImplementedError

    training = False  # the evaluator's model.eval() / model.train(was_training) apply as no-ops

    def eval(self) -> ExportedModel:
        return self

    def train(self, mode: bool = True) -> ExportedModel:
        if mode:
            raise ConfigError(f"{self.path}: an exported model cannot be trained")
        return self

    @property
    def max_stride(self) -> int:
        return max(32, max(self.strides))

    def _check(self, x: Tensor) -> None:
        if self.hw is not None and tuple(x.shape[-2:]) != self.hw:
            raise ConfigError(
                f"{self.path} takes {self.hw[0]}x{self.hw[1]} images, got "
                f"{x.shape[-2]}x{x.shape[-1]}: use imgsz={self.hw[0]} and data.rect_val=false, "
                "or export with dynamic=true"
            )

    def _feed(self, x: Tensor, conf: float, iou: float, max_det: int) -> dict[str, np.ndarray]:
        feed = {INPUT_NAME: x.detach().float().cpu().contiguous().numpy()}
        if self.nms:
            feed["conf"] = np.array([conf], np.float32)
            feed["iou"] = np.array([iou], np.float32)
            feed["max_det"] = np.array([max_det], np.int64)
        return feed

    def run(
        self, x: Tensor, conf: float = 0.25, iou: float = 0.7, max_det: int = 300
    ) -> dict[str, np.ndarray]:
        """x: (B, 3, H, W) float in [0, 1] -> every graph output by name (B images at once, or
        one at a time when the file was exported for a fixed batch of 1)."""
        self._check(x)
        if self.batch is None or self.batch == x.shape[0]:
            outs = self._infer(self._feed(x, conf, iou, max_det))
            return dict(zip(self.output_names, outs, strict=True))
        if self.batch != 1:
            raise ConfigError(f"{self.path} takes batches of {self.batch}, got {x.shape[0]}")
        parts = [self.run(x[i : i + 1], conf, iou, max_det) for i in range(x.shape[0])]
        merged = {k: np.concatenate([p[k] for p in parts]) for k in RAW_OUTPUTS}
        if self.nms:
            for i, p in enumerate(parts):
                p["det_image"] = np.full_like(p["det_image"], i)
            merged.update({k: np.concatenate([p[k] for p in parts]) for k in DET_OUTPUTS})
        return merged

    def detect(self, x: Tensor, conf: float, iou: float, max_det: int) -> list[Detections]:
        """(B, 3, H, W) float in [0, 1] -> B detections in input pixels (on the CPU)."""
        out = self.run(x, conf, iou, max_det)
        if not self.nms:
            boxes, scores = (torch.from_numpy(out[k]) for k in RAW_OUTPUTS)
            return postprocess(boxes, scores, conf, iou, max_det)
        image = out["det_image"]
        dets = []
        for b in range(x.shape[0]):
            at = image == b
            dets.append(
                Detections(
                    torch.from_numpy(out["det_boxes"][at]),
                    torch.from_numpy(out["det_scores"][at]),
                    torch.from_numpy(out["det_classes"][at]).long(),
                )
            )
        return dets


class OnnxRuntimeModel(ExportedModel):
    """An exported ``.onnx`` detector in an onnxruntime CPU session."""

    runtime = "onnxruntime"

    def __init__(self, path: str | os.PathLike, threads: int = 0):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ConfigError(
                f"{path}: running ONNX models needs onnxruntime: pip install 'detforge[export]'"
            ) from e
        path = _existing(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: onnxruntime's default (one per core)
        # idle worker threads sleep instead of spinning, as the CLI asks of OpenMP: with another
        # process busy on a 2-core machine, spinning took a 640 px yolo-n from 92 to 160 ms
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own types for unreadable graphs
            raise ConfigError(f"{path}: not a loadable ONNX model: {e}") from e
        meta = self.session.get_modelmeta().custom_metadata_map
        meta = {k[len(META) :]: v for k, v in meta.items() if k.startswith(META)}
        shape = self.session.get_inputs()[0].shape  # ints when fixed, names when dynamic
        shape = [s if isinstance(s, int) else None for s in shape]
        super().__init__(path, meta, shape, [o.name for o in self.session.get_outputs()])

    def _infer(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self.output_names, feed)


class OpenVinoModel(ExportedModel):
    """An exported OpenVINO IR (``.xml`` + ``.bin``) compiled for the CPU in fp32."""

    runtime = "OpenVINO"

    def __init__(self, path: str | os.PathLike, threads: int = 0):
        try:
            import openvino as ov
        except ImportError as e:
            raise ConfigError(
                f"{path}: running OpenVINO models needs openvino: pip install 'detforge[openvino]'"
            ) from e
        path = _existing(path)
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as e:  # OpenVINO raises RuntimeError subclasses for unreadable IR
            raise ConfigError(f"{path}: not a loadable OpenVINO model: {e}") from e
        group = [META[:-1]]  # rt_info "detforge/<key>"
        rt = model.get_rt_info(group).astype(dict) if model.has_rt_info(group) else {}
        meta = {k: v.astype(str) for k, v in rt.items()}
        dims = model.inputs[0].get_partial_shape()
        shape = [d.get_length() if d.is_static else None for d in dims]
        # f32: the CPU plugin would otherwise run bf16 on CPUs that have it (not the parity-checked
        # arithmetic); 0 threads: OpenVINO's default
        config = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads > 0:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = core.compile_model(model, "CPU", config)
        outputs = [o.get_any_name() for o in self.compiled.outputs]
        super().__init__(path, meta, shape, outputs)

    def _infer(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        result = self.compiled(feed)
        return [np.asarray(result[o]) for o in self.compiled.outputs]


def detect_batch(
    model: nn.Module | ExportedModel,
    x: Tensor,
    conf: float,
    iou: float,
    max_det: int,
    amp_dtype: torch.dtype | None = None,
) -> list[Detections]:
    """Detections of a batch (B, 3, H, W) in input pixels, for a PyTorch detector (forward
    under autocast with ``amp_dtype``, then decode -> postprocess in fp32) or an
    :class:`ExportedModel` alike (always fp32)."""
    if isinstance(model, ExportedModel):
        return [d.to(x.device) for d in model.detect(x, conf, iou, max_det)]
    with autocast(x.device, amp_dtype):
        outputs = [o.float() for o in model(x)]
    boxes, scores = decode_model_outputs(model, outputs)
    return postprocess(boxes, scores, conf, iou, max_det)
