"""Python API: ``detforge.train(...)`` and ``detforge.Detector.load(path).predict(images)``."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .config import RunConfig, load_config
from .engine.checkpoint import load_checkpoint, model_from_checkpoint
from .engine.hooks import Hook
from .infer.device import autocast, resolve_amp, select_device
from .infer.postprocess import postprocess, scale_boxes_to_original
from .models.classmap import check_same_classes
from .models.decode import decode
from .models.yolo import YOLODetector

__all__ = ["train", "Detector", "Prediction"]

ImageLike = str | os.PathLike | np.ndarray


def train(cfg: str | os.PathLike | None = None, hooks: Sequence[Hook] = (), **overrides: Any):
    """Train a detector. ``overrides`` use config keys or aliases: ``train(data="d.yaml",
    epochs=50, **{"optim.lr0": 0.02})``; nested dicts per section also work. ``hooks``:
    :class:`detforge.Hook` instances run at every training event after the built-in ones.
    With ``train.resume`` set (anywhere), the checkpoint's configuration is the base. Returns a
    :class:`~detforge.engine.trainer.TrainResult`."""
    from .engine.resume import load_train_config
    from .engine.trainer import Trainer

    config = overrides.pop("config", None)
    if isinstance(config, RunConfig):
        run_cfg = config
    else:
        run_cfg = load_train_config(overrides, cfg_file=cfg)
    return Trainer(run_cfg, hooks=hooks).fit()


@dataclass
class Prediction:
    """Detections of one image, in its original pixels.

    boxes: (D, 4) xyxy float32; scores: (D,); classes: (D,) int64; names: class names.
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    names: list[str]
    shape: tuple[int, int]
    path: str | None = None
    latency_ms: float = 0.0
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def labels(self) -> list[str]:
        return [self.names[int(c)] for c in self.classes]


class Detector:
    """A trained detector ready for inference."""

    def __init__(
        self,
        model: YOLODetector,
        names: list[str],
        imgsz: int = 640,
        device: str | torch.device = "auto",
        amp: str = "off",
    ):
        self.device = select_device(device) if isinstance(device, str) else device
        self.model = model.to(self.device, memory_format=torch.channels_last).eval()
        self.names, self.imgsz = list(names), imgsz
        self.amp_dtype = resolve_amp(amp, self.device)
        self.extra_models: list[YOLODetector] = []

    def add_ensemble_member(self, other: Detector) -> None:
        """Merge another detector's predictions into this one's (same classes)."""
        check_same_classes(
            other.names, "an ensemble member", self.names, "this detector",
            "; ensembled weights must predict the same classes",
        )  # fmt: skip
        self.extra_models.append(other.model.to(self.device))

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        device: str = "auto",
        imgsz: int | None = None,
        amp: str = "off",
    ) -> Detector:
        """Load ``best.pt``/``last.pt`` (EMA weights when present)."""
        ckpt = load_checkpoint(path)
        model = model_from_checkpoint(ckpt, str(path))
        size = imgsz or ckpt.get("config", {}).get("train", {}).get("imgsz", 640)
        return cls(model, ckpt["names"], size, device, amp)

    @torch.no_grad()
    def predict(
        self,
        images: ImageLike | Iterable[ImageLike],
        conf: float = 0.25,
        iou: float = 0.7,
        max_det: int = 300,
        batch: int = 8,
        tta: dict | None = None,
    ) -> list[Prediction]:
        """Detect objects in image files or uint8 arrays: RGB (H, W, 3), gray (H, W) or
        (H, W, 1), or RGBA (H, W, 4) (alpha dropped, as for image files).

        tta: test-time augmentation, keyword arguments of
        :func:`~detforge.infer.tta.ensemble_predict` (transforms, scales, merge, wbf_iou); also
        used to merge ensemble members (see :meth:`add_ensemble_member`).
        """
        from .data.augment.core import letterbox
        from .data.images import read_image, to_rgb
        from .infer.tta import ensemble_predict

        if isinstance(images, str | os.PathLike | np.ndarray):
            images = [images]
        items = list(images)
        out: list[Prediction] = []
        empty = np.zeros((0, 5), np.float32)
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            t0 = time.perf_counter()
            arrays, metas = [], []
            for item in chunk:
                img = to_rgb(item) if isinstance(item, np.ndarray) else read_image(item)
                canvas, _, ratio, pad = letterbox(img, empty, self.imgsz)
                arrays.append(canvas)
                path = None if isinstance(item, np.ndarray) else str(item)
                metas.append((ratio, pad, img.shape[:2], path))
            x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(self.device)
            x = x.float().div_(255).contiguous(memory_format=torch.channels_last)
            merged = tta is not None or bool(self.extra_models)
            with autocast(self.device, self.amp_dtype):
                if merged:
                    dets = ensemble_predict(
                        [self.model, *self.extra_models], x, conf=conf, iou=iou,
                        max_det=max_det, **(tta or {}),
                    )  # fmt: skip
                else:
                    outputs = self.model(x)
            if not merged:
                boxes, scores = decode(
                    [o.float() for o in outputs], self.model.strides, self.model.reg_max
                )
                dets = postprocess(boxes, scores, conf, iou, max_det)
            ms = (time.perf_counter() - t0) * 1000 / len(chunk)
            for det, (ratio, pad, shape, path) in zip(dets, metas, strict=True):
                b = scale_boxes_to_original(det.boxes, ratio, pad, shape)
                out.append(
                    Prediction(
                        b.cpu().numpy().astype(np.float32),
                        det.scores.cpu().numpy(),
                        det.classes.cpu().numpy().astype(np.int64),
                        self.names,
                        tuple(shape),
                        path,
                        ms,
                    )
                )
        return out


def config_from_checkpoint(
    path: str | os.PathLike,
    overrides: Iterable[str] | Mapping = (),
    extra_aliases: Mapping[str, str] | None = None,
) -> RunConfig:
    """The run configuration saved in a checkpoint, with ``overrides`` on top."""
    ckpt = load_checkpoint(path)
    base = dict(ckpt.get("config") or {})
    base.get("train", {}).pop("resume", None)
    return load_config(overrides, base=base, extra_aliases=extra_aliases)
