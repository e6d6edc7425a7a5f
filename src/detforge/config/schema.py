"""The typed schema of a detforge run: one dataclass per section.

Every field is documented here once; ``detforge config --help``-style listings and the README
reference are generated from this file, so a setting without help text cannot exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .fields import setting

AmpMode = Literal["auto", "off", "fp16", "bf16"]


@dataclass
class DataSection:
    path: str | None = setting(
        None, "Path to a YOLO data.yaml; null trains on the built-in synthetic demo dataset."
    )
    strict: bool = setting(
        False, "Treat unreadable images and bad label lines as errors instead of skipping them."
    )
    workers: int = setting(2, "DataLoader worker processes (0 loads in the main process).", ge=0)
    cache_dir: str | None = setting(
        None,
        "Folder for the label cache and the demo dataset; null uses $DETFORGE_CACHE or "
        "~/.cache/detforge.",
    )


@dataclass
class ModelSection:
    name: str = setting(
        "yolo-n",
        "Model: yolo-{n,s,m} with optional level suffix -p2 (P2-P5) or -p2lite (P2-P4), "
        "or a path to a model YAML.",
    )
    weights: str | None = setting(
        None, "Initialise from a detforge checkpoint (weights only; use train.resume to resume)."
    )


@dataclass
class AugmentSection:
    hsv_h: float = setting(0.015, "Hue jitter, fraction of the hue circle.", ge=0, le=0.5)
    hsv_s: float = setting(0.7, "Saturation gain jitter (fraction).", ge=0, le=1)
    hsv_v: float = setting(0.4, "Value (brightness) gain jitter (fraction).", ge=0, le=1)
    fliplr: float = setting(0.5, "Probability of a horizontal flip.", ge=0, le=1)
    flipud: float = setting(0.0, "Probability of a vertical flip.", ge=0, le=1)
    scale: float = setting(
        0.5, "Random scale range: the image is scaled by 1 +- scale.", ge=0, lt=1
    )
    translate: float = setting(0.1, "Random translation, fraction of the image size.", ge=0, le=0.5)


@dataclass
class LossSection:
    box: float = setting(7.5, "Gain of the box (IoU) loss.", ge=0)
    cls: float = setting(0.5, "Gain of the classification loss.", ge=0)
    dfl: float = setting(1.5, "Gain of the distribution focal loss.", ge=0)
    iou: Literal["ciou", "giou", "diou", "iou"] = setting(
        "ciou", "IoU variant of the box loss (and of the assigner's alignment metric)."
    )
    topk: int = setting(10, "Task-aligned assigner: candidate anchors per object.", ge=1)
    alpha: float = setting(0.5, "Task-aligned assigner: exponent of the class score.", ge=0)
    beta: float = setting(6.0, "Task-aligned assigner: exponent of the IoU.", ge=0)


@dataclass
class OptimSection:
    name: Literal["sgd", "adamw"] = setting("sgd", "Optimizer: sgd (momentum, nesterov) or adamw.")
    lr0: float = setting(0.01, "Base learning rate after warmup.", gt=0)
    momentum: float = setting(0.937, "SGD momentum, or AdamW beta1.", ge=0, lt=1)
    nesterov: bool = setting(True, "Nesterov momentum (SGD only).")
    weight_decay: float = setting(
        5e-4, "Weight decay on conv/linear weights (never on norms and biases).", ge=0
    )
    wd_batch_ref: int | None = setting(
        64,
        "weight_decay is stated for this many images per optimizer step and scaled linearly "
        "with the real effective batch; null applies it unscaled.",
        ge=1,
    )


@dataclass
class ScheduleSection:
    name: Literal["cosine", "linear"] = setting(
        "cosine", "Decay after warmup, from lr0 to lr0*lrf at the last iteration."
    )
    lrf: float = setting(0.01, "Final learning rate as a fraction of lr0.", ge=0, le=1)
    warmup_epochs: float = setting(
        3.0, "Linear warmup length in epochs (stepped per iteration).", ge=0
    )
    warmup_momentum: float = setting(0.8, "Momentum at the start of warmup.", ge=0, lt=1)
    warmup_bias_lr: float = setting(
        0.1, "Learning rate of bias parameters at the start of warmup.", ge=0
    )


@dataclass
class ClipSection:
    mode: Literal["norm", "value", "none"] = setting(
        "norm", "Gradient clipping: by total norm, by value, or none (after AMP unscaling)."
    )
    max_norm: float = setting(10.0, "Largest total gradient norm (mode norm).", gt=0)
    norm_type: float = setting(2.0, "p of the p-norm (mode norm); inf for the max-norm.", gt=0)
    max_value: float = setting(1.0, "Largest absolute gradient element (mode value).", gt=0)


@dataclass
class TrainSection:
    epochs: int = setting(100, "Training epochs.", ge=1)
    batch: int = setting(16, "Images per batch (per process).", ge=1)
    imgsz: int = setting(640, "Training and validation image size (a multiple of 32).", ge=32)
    device: str = setting("auto", "auto, cpu, cuda or cuda:N.")
    amp: AmpMode = setting(
        "auto",
        "Mixed precision: auto = bf16 on CUDA where supported (else fp16), bf16 on CPUs with "
        "AVX-512-BF16 or AMX, else off; off = fp32.",
    )
    seed: int = setting(0, "Seed for python, numpy, torch and the data order.", ge=0)
    deterministic: bool = setting(
        False, "Use deterministic algorithms (slower on GPU; warns on ops that have none)."
    )
    resume: str | None = setting(
        None, "Continue an interrupted run from its checkpoint (e.g. runs/train/weights/last.pt)."
    )
    ema: bool = setting(True, "Keep an exponential moving average of the weights.")
    ema_decay: float = setting(0.9999, "EMA decay at full strength.", gt=0, lt=1)
    ema_tau: float = setting(
        2000.0, "EMA warm-up: decay = ema_decay * (1 - exp(-updates / ema_tau)).", gt=0
    )
    max_nonfinite: int = setting(
        10,
        "Consecutive steps with a non-finite loss or gradient (each skipped) before "
        "training stops with an error and a checkpoint.",
        ge=1,
    )
    val_interval: int = setting(1, "Validate every N epochs (and always after the last).", ge=1)
    fitness: dict[str, float] = setting(
        {"map50": 0.1, "map50_95": 0.9},
        "Weights of validation metrics whose sum chooses best.pt.",
    )
    project: str = setting("runs", "Folder that holds run folders.")
    name: str = setting("train", "Run folder name (numbered if it exists, unless exist_ok).")
    exist_ok: bool = setting(False, "Reuse the run folder if it exists.")
    progress: bool = setting(True, "Show a progress bar with live losses.")


@dataclass
class EvalSection:
    conf: float = setting(0.001, "Confidence threshold for validation detections.", ge=0, le=1)
    iou: float = setting(0.7, "IoU threshold of class-aware NMS.", gt=0, le=1)
    max_det: int = setting(300, "Maximum detections per image.", ge=1)
    batch: int | None = setting(None, "Validation batch size; null uses 2x train.batch.", ge=1)
    save_json: bool = setting(
        True, "Write the final validation predictions and ground truth as COCO json."
    )


@dataclass
class PredictSection:
    conf: float = setting(0.25, "Confidence threshold for predictions.", ge=0, le=1)
    iou: float = setting(0.7, "IoU threshold of class-aware NMS.", gt=0, le=1)
    max_det: int = setting(300, "Maximum detections per image.", ge=1)
    save_images: bool = setting(True, "Write annotated images.")
    save_txt: bool = setting(True, "Write YOLO txt labels (class cx cy w h conf, normalised).")
    save_json: bool = setting(True, "Write predictions.json in COCO results format.")


@dataclass
class RunConfig:
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    augment: AugmentSection = field(default_factory=AugmentSection)
    loss: LossSection = field(default_factory=LossSection)
    optim: OptimSection = field(default_factory=OptimSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    clip: ClipSection = field(default_factory=ClipSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)
    predict: PredictSection = field(default_factory=PredictSection)


# Short names for the settings people type every day.
ALIASES: dict[str, str] = {
    "data": "data.path",
    "model": "model.name",
    "epochs": "train.epochs",
    "imgsz": "train.imgsz",
    "batch": "train.batch",
    "device": "train.device",
    "name": "train.name",
    "workers": "data.workers",
    "seed": "train.seed",
    "amp": "train.amp",
    "lr0": "optim.lr0",
    "optimizer": "optim.name",
    "project": "train.project",
    "resume": "train.resume",
}

# Settings applied when no data.yaml is given, below anything the user sets.
DEMO_PRESET: dict[str, dict] = {
    "train": {"imgsz": 256, "epochs": 15, "batch": 16},
    "schedule": {"warmup_epochs": 1.0},
}
