"""Python API: ``detforge.train(...)`` and ``detforge.Detector.load(path).predict(images)``.

Importing this module does not import torch: :func:`train` and :meth:`Detector.load` first ask
for a passive OpenMP wait policy (:func:`~detforge.utils.threads.prefer_passive_openmp`), which
only acts before torch is loaded.

Longer than the ~300-line guide: train(), its logging and the Detector are the whole
public surface, kept in one module users read.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .config import RunConfig, load_config
from .config.fields import ConfigError
from .utils.threads import inference_threads, intra_op_threads, prefer_passive_openmp

if TYPE_CHECKING:
    import torch

    from .engine.hooks import Hook
    from .engine.trainer import TrainResult
    from .models.yolo import YOLODetector

__all__ = ["train", "train_config", "Detector", "Prediction"]

ImageLike = str | os.PathLike | np.ndarray
log = logging.getLogger("detforge")


def train(
    cfg: str | os.PathLike | None = None,
    hooks: Sequence[Hook] = (),
    *,
    verbose: bool = True,
    config: RunConfig | None = None,
    **overrides: Any,
) -> TrainResult:
    """Train a detector; returns a :class:`~detforge.engine.trainer.TrainResult`.

    overrides: the settings of ``detforge train key=value``, with the same names: aliases
    (``data``, ``model``, ``epochs``, ``imgsz``, ``batch``, ``resume``, ``weights``, ... see
    :data:`detforge.config.ALIASES`), dotted keys (``**{"optim.lr0": 0.02}``), nested dicts per
    section (``optim={"lr0": 0.02}``) and ``recipe="finetune"``. ``resume="runs/train/weights/
    last.pt"`` continues a run with its saved settings. An unknown key is a
    :class:`~detforge.config.ConfigError` that names it and the nearest valid key.
    hooks: :class:`detforge.Hook` instances run at every training event after the built-in
    ones and the trackers of ``track.loggers`` (see the README's Hooks section).
    cfg: a YAML file of settings, below ``overrides``. config: a ready :class:`RunConfig`
    instead of ``cfg`` and ``overrides``.
    verbose: log progress to stderr as the command line does (data summary, epochs, final
    metrics); False keeps only warnings on the console. ``train.log`` in the run folder gets the
    full log either way. ``train.progress=False`` hides the progress bar.
    """
    prefer_passive_openmp()
    with _run_logging(verbose):
        notes: list[tuple[int, str]] = []
        if config is not None:
            if cfg is not None or overrides:
                raise TypeError("train(config=...) takes no cfg file or other settings")
            run_cfg = config
        else:
            run_cfg = train_config(overrides, cfg_file=cfg, notes=notes)
        from .engine.trainer import Trainer

        log.info(describe_run(run_cfg))
        for level, line in notes:
            log.log(level, line)
        from .track import tracking_hooks

        result = Trainer(run_cfg, hooks=[*tracking_hooks(run_cfg), *hooks]).fit()
        if os.environ.get("RANK", "0") == "0":  # under torchrun the main process reports
            log.info("\n".join(["", *summary_lines(result, run_cfg)]))
        return result


def describe_run(cfg: RunConfig) -> str:
    """The first line of a training run: what it trains, on what, how long, where it writes."""
    t = cfg.train
    if t.resume:
        return f"detforge train: resuming {t.resume} ({t.epochs} epochs in all)"
    data = (
        f"on {cfg.data.path}"
        if cfg.data.path
        else "on the built-in demo dataset (synthetic shapes, 6 classes; use data=your/data.yaml "
        "for your own)"
    )
    return (
        f"detforge train: {cfg.model.name} {data}, {t.epochs} epoch{'s' * (t.epochs != 1)}"
        f"{f' at most, fitted to {t.time:g} h' if t.time else ''} at {t.imgsz} px, "
        f"run folder under {t.project}/"
    )


def summary_lines(result: TrainResult, cfg: RunConfig) -> list[str]:
    """The last lines of a training run: its result, then how to go on from it."""
    m, run = result.metrics, result.run_dir
    best = run / "weights" / "best.pt"
    speed = result.train_images / max(result.train_seconds, 1e-9)
    from .engine.tasks import task_for

    headline = task_for(cfg).summary(m)
    lines = [
        f"done: {run}  best epoch {result.best_epoch}  {headline}  ({speed:.1f} train images/s)",
        "next:",
        f"  validate:  detforge val weights={best}",
        f"  predict:   detforge predict weights={best} source=path/to/images",
    ]
    if not cfg.data.path:
        lines.append("  your data: detforge train data=path/to/data.yaml   (README: Your own data)")
    report = run / "report.html"
    if report.is_file():
        lines.append(f"  report:    {report}")
    return lines


def train_config(
    overrides: Iterable[str] | Mapping[str, Any] = (),
    cfg_file: str | os.PathLike | None = None,
    notes: list[tuple[int, str]] | None = None,
) -> RunConfig:
    """The configuration of a training run (shared by ``detforge train`` and :func:`train`):
    the usual layers (:func:`~detforge.config.load_config`), on top of the checkpoint's saved
    settings when any layer (argument, cfg file, environment) sets ``train.resume``. Settings
    that need model or loss code are checked here too, before any data is read."""
    from .engine.preflight import check_before_data
    from .engine.resume import load_train_config

    cfg = load_train_config(overrides, cfg_file=cfg_file, notes=notes)
    check_before_data(cfg)
    return cfg


@contextmanager
def _run_logging(verbose: bool) -> Iterator[None]:
    """Let the ``detforge`` logger's INFO records reach ``train.log`` and, if ``verbose``, the
    console, for the duration of a call; restored afterwards.

    A level the user set on the ``detforge`` logger is kept. Without any logging set up
    (``logger.hasHandlers()`` false), a stderr handler prints messages as the CLI does; when the
    application has its own handlers, records propagate to them. ``verbose=False`` stops
    propagation and prints only warnings.
    """
    level, propagate = log.level, log.propagate
    added: list[logging.Handler] = []
    if level == logging.NOTSET:
        log.setLevel(logging.INFO)
    if not verbose:
        log.propagate = False
        added.append(logging.StreamHandler(sys.stderr))
        added[-1].setLevel(logging.WARNING)
    elif not log.hasHandlers():
        added.append(logging.StreamHandler(sys.stderr))
    for handler in added:
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    try:
        yield
    finally:
        for handler in added:
            log.removeHandler(handler)
        log.setLevel(level)
        log.propagate = propagate


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
        amp: str = "auto",
        threads: int | None = None,
    ):
        import torch

        from .infer.device import resolve_precision, select_device
        from .infer.runtime import ExportedModel

        self.names, self.imgsz = list(names), imgsz
        self.threads = threads  # intra-op threads during predict; None: torch's setting
        self.extra_models: list[YOLODetector] = []
        if isinstance(model, ExportedModel):
            if str(device) not in ("auto", "cpu") or amp not in ("off", "fp32", "auto"):
                raise ConfigError(
                    f"{model.path}: exported models run in {model.runtime} on the CPU in fp32; "
                    f"device={device} amp={amp} do not apply (use device=cpu amp=off)"
                )
            self.device, self.model, self.amp_dtype = torch.device("cpu"), model, None
            return
        self.device = select_device(device) if isinstance(device, str) else device
        self.model = model.to(self.device, memory_format=torch.channels_last).eval()
        self.amp_dtype = resolve_precision(amp, self.device, key="amp")

    def add_ensemble_member(self, other: Detector) -> None:
        """Merge another detector's predictions into this one's (same classes)."""
        from .models.classmap import check_same_classes

        self._refuse_onnx("ensembles")
        other._refuse_onnx("ensembles")
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
        amp: str = "auto",
        fuse: bool = True,
        threads: int | None = None,
    ) -> Detector:
        """Load ``best.pt``/``last.pt`` (EMA weights when present), or a ``.onnx`` file or
        OpenVINO ``.xml`` from ``detforge export`` (run by onnxruntime or OpenVINO on the CPU;
        names and input size from its metadata).

        amp: autocast of the forward pass: auto (the default, as ``predict.precision``: bf16
        on CPUs with AVX-512-BF16 or AMX, else fp32; see
        :func:`~detforge.infer.device.resolve_precision`), off (or fp32), bf16, fp16 (CUDA
        only). The same default as ``detforge predict`` and ``serve``, so a script gets the
        command line's detections and speed; off keeps fp32.
        fuse: fold every BatchNorm into the conv before it (same outputs within float
        rounding, fewer kernels); False keeps the model's modules as trained.
        threads: torch's intra-op threads while :meth:`predict` runs (restored after). None
        chooses: torch's own count when idle OpenMP threads sleep (detforge imported before
        torch), else the count :func:`~detforge.utils.threads.inference_threads` gives, which
        avoids the stalls of spinning threads on a busy machine. 0 keeps torch's count. For
        an exported file, N > 0 is also the runtime's intra-op thread count (None or 0: one per
        core).
        """
        prefer_passive_openmp()
        requested, threads = threads, inference_threads(threads)
        from .infer.runtime import is_exported, load_exported

        if is_exported(path):
            rt = load_exported(path, threads=requested or 0)
            return cls(rt, rt.names, imgsz or rt.imgsz, device, amp, threads)
        from .engine.checkpoint import checkpoint_task, load_checkpoint, model_from_checkpoint
        from .models.fuse import fold_batchnorm

        ckpt = load_checkpoint(path)
        if checkpoint_task(ckpt) == "classify":
            raise ConfigError(
                f"{path} is an image classifier, not a detector: use detforge predict / val"
            )
        model = model_from_checkpoint(ckpt, str(path)).eval()
        if fuse:
            fold_batchnorm(model)
        size = imgsz or ckpt.get("config", {}).get("train", {}).get("imgsz", 640)
        return cls(model, ckpt["names"], size, device, amp, threads)

    def predict(
        self,
        images: ImageLike | Iterable[ImageLike],
        conf: float = 0.25,
        iou: float = 0.7,
        max_det: int = 300,
        batch: int = 8,
        tta: dict | None = None,
        rect: bool = True,
    ) -> list[Prediction]:
        """Detect objects in image files or uint8 arrays: RGB (H, W, 3), gray (H, W) or
        (H, W, 1), or RGBA (H, W, 4) (alpha dropped, as for image files).

        rect: letterbox to the smallest rectangle of multiples of the model's largest stride
        that holds the images (one per batch of ``batch``), as ``predict.rect``; False pads to
        the square ``imgsz`` x ``imgsz``. Boxes come back in original pixels either way. An
        ONNX file exported with a fixed input size (``dynamic=false``) always gets the square.

        tta: test-time augmentation, keyword arguments of
        :func:`~detforge.infer.tta.ensemble_predict` (transforms, scales, merge, wbf_iou); also
        used to merge ensemble members (see :meth:`add_ensemble_member`).
        """
        import torch

        with torch.inference_mode(), intra_op_threads(self.threads):
            return self._predict(images, conf, iou, max_det, batch, tta, rect)

    def _refuse_onnx(self, what: str) -> None:
        from .infer.runtime import ExportedModel

        if isinstance(self.model, ExportedModel):
            raise ConfigError(
                f"{self.model.path}: {what} need PyTorch weights (.pt), not an exported model"
            )

    def rect_stride(self) -> int | None:
        """The stride the rectangular letterbox rounds to (the largest over ensemble members),
        or None when the model takes only a square input (an ONNX file with fixed H and W)."""
        from .infer.runtime import ExportedModel

        if isinstance(self.model, ExportedModel) and self.model.hw is not None:
            return None
        return max(int(m.max_stride) for m in [self.model, *self.extra_models])

    def _predict(self, images, conf, iou, max_det, batch, tta, rect) -> list[Prediction]:
        from .data.images import read_image, to_rgb
        from .infer.device import autocast
        from .infer.postprocess import scale_boxes_to_original
        from .infer.preprocess import letterbox_batch, to_input
        from .infer.runtime import ExportedModel, detect_batch
        from .infer.tta import ensemble_predict

        onnx = isinstance(self.model, ExportedModel)
        if tta is not None:
            self._refuse_onnx("test-time augmentation and ensembles")
        if isinstance(images, str | os.PathLike | np.ndarray):
            images = [images]
        items = list(images)
        stride = self.rect_stride() if rect else None
        out: list[Prediction] = []
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            t0 = time.perf_counter()
            arrays = [to_rgb(i) if isinstance(i, np.ndarray) else read_image(i) for i in chunk]
            canvas, placed = letterbox_batch(arrays, self.imgsz, stride=stride)
            x = to_input(canvas, self.device, channels_last=not onnx)
            if tta is not None or self.extra_models:
                with autocast(self.device, self.amp_dtype):
                    dets = ensemble_predict(
                        [self.model, *self.extra_models], x, conf=conf, iou=iou,
                        max_det=max_det, **(tta or {}),
                    )  # fmt: skip
            else:
                dets = detect_batch(self.model, x, conf, iou, max_det, self.amp_dtype)
            ms = (time.perf_counter() - t0) * 1000 / len(chunk)
            for det, at, item in zip(dets, placed, chunk, strict=True):
                b = scale_boxes_to_original(det.boxes, at.ratio, at.pad, at.shape)
                out.append(
                    Prediction(
                        b.cpu().numpy().astype(np.float32),
                        det.scores.cpu().numpy(),
                        det.classes.cpu().numpy().astype(np.int64),
                        self.names,
                        at.shape,
                        None if isinstance(item, np.ndarray) else str(item),
                        ms,
                    )
                )
        return out


def config_from_checkpoint(
    path: str | os.PathLike,
    overrides: Iterable[str] | Mapping = (),
    extra_aliases: Mapping[str, str] | None = None,
    notes: list[tuple[int, str]] | None = None,
) -> RunConfig:
    """The run configuration saved in a checkpoint, with ``overrides`` on top. For an ONNX file
    (which holds no settings) the defaults, with the input size of its metadata."""
    from .engine.checkpoint import load_checkpoint, saved_config
    from .infer.runtime import is_exported, load_exported

    if is_exported(path):
        base = {"train": {"imgsz": load_exported(path).imgsz}}
        return load_config(overrides, base=base, extra_aliases=extra_aliases, notes=notes)
    base = saved_config(load_checkpoint(path))
    return load_config(overrides, base=base, extra_aliases=extra_aliases, notes=notes)
