"""Exported models run through onnxruntime behind the interface of the PyTorch detector, so
``predict``, ``val`` and the Python API use one pre- and post-processing for both.

The graph's names and metadata keys are defined here (the lower layer) and written by
:mod:`detforge.export`. An ONNX file from ``detforge export`` holds, in its metadata, the class
names, strides, input size, normalisation and letterbox settings; nothing else is needed to use it.
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
    "OnnxRuntimeModel",
    "is_onnx",
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


class OnnxRuntimeModel:
    """An exported detector in an onnxruntime CPU session.

    ``detect(x, conf, iou, max_det)`` gives the same detections as the PyTorch model's decode ->
    :func:`~detforge.infer.postprocess.postprocess` (NMS in the graph or here, as exported);
    ``run(x)`` gives the graph's raw outputs.
    """

    def __init__(self, path: str | os.PathLike, threads: int = 0):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ConfigError(
                f"{path}: running ONNX models needs onnxruntime: pip install 'detforge[export]'"
            ) from e
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"weights: {path} does not exist")
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
        missing = [k for k in REQUIRED_META if META + k not in meta]
        if missing:
            raise ConfigError(
                f"{path}: no detforge metadata ({', '.join(META + k for k in missing)}); "
                "export the model with detforge export"
            )
        self.metadata = {k[len(META) :]: v for k, v in meta.items() if k.startswith(META)}
        self.names: list[str] = json.loads(self.metadata["names"])
        self.strides = tuple(json.loads(self.metadata["strides"]))
        self.imgsz = int(self.metadata["imgsz"])
        self.nms = self.metadata["nms"] == "true"
        self.nc = len(self.names)
        shape = self.session.get_inputs()[0].shape  # ints when fixed, names when dynamic
        self.batch = shape[0] if isinstance(shape[0], int) else None
        self.hw = tuple(shape[2:]) if all(isinstance(s, int) for s in shape[2:]) else None

    training = False  # the evaluator's model.eval() / model.train(was_training) apply as no-ops

    def eval(self) -> OnnxRuntimeModel:
        return self

    def train(self, mode: bool = True) -> OnnxRuntimeModel:
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
        names = [o.name for o in self.session.get_outputs()]
        if self.batch is None or self.batch == x.shape[0]:
            outs = self.session.run(names, self._feed(x, conf, iou, max_det))
            return dict(zip(names, outs, strict=True))
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


def detect_batch(
    model: nn.Module | OnnxRuntimeModel,
    x: Tensor,
    conf: float,
    iou: float,
    max_det: int,
    amp_dtype: torch.dtype | None = None,
) -> list[Detections]:
    """Detections of a batch (B, 3, H, W) in input pixels, for a PyTorch detector (forward
    under autocast with ``amp_dtype``, then decode -> postprocess in fp32) or an
    :class:`OnnxRuntimeModel` alike (always fp32)."""
    if isinstance(model, OnnxRuntimeModel):
        return [d.to(x.device) for d in model.detect(x, conf, iou, max_det)]
    with autocast(x.device, amp_dtype):
        outputs = [o.float() for o in model(x)]
    boxes, scores = decode_model_outputs(model, outputs)
    return postprocess(boxes, scores, conf, iou, max_det)
