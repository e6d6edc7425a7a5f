"""The typed schema of a detforge run: one dataclass per section.

Every field is documented here once; ``detforge config --help``-style listings and the README
reference are generated from this file, so a setting without help text cannot exist.

Longer than the ~300-line guide on purpose: it is the one place every setting, its bounds,
help text and consumer module are written down.
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
    workers: int | Literal["auto"] = setting(
        "auto",
        "DataLoader worker processes (0 loads in the main process). auto: on CUDA min(8, CPU "
        "cores); on CPU the cores left after torch's compute threads (0 on a 2-core machine, "
        "where workers measured slower because they compete with the model step).",
        ge=0,
    )
    sampler: Literal["uniform", "weighted"] = setting(
        "uniform",
        "Training sampler: every image once per epoch, or drawn by image weights "
        "(data.weighting; task=classify: inverse class frequency) with replacement to fight "
        "class imbalance.",
    )
    weighting: Literal["rarest", "inverse_frequency"] = setting(
        "rarest",
        "weighted sampler: an image's weight is that of the rarest class it holds, or "
        "the mean inverse frequency of its boxes' classes.",
    )
    weight_power: float = setting(
        0.5,
        "weighted sampler: weights are raised to this power (1: pure inverse frequency; "
        "on hituav the 15 images with the rarest class took 67% of draws at 1, 22% at 0.5).",
        gt=0,
        le=1,
    )
    fraction: float = setting(
        1.0,
        "Train on this fraction of the training images: a deterministic (train.seed), "
        "class-stratified draw that keeps every class (cheap tuning trials); validation is whole.",
        gt=0,
        le=1,
    )
    cache: Literal["none", "ram", "disk"] = setting(
        "none",
        "Cache decoded images: in RAM, or as .npy files under cache_dir; the memory or "
        "disk it will take is printed first.",
    )
    rect_val: bool = setting(
        True, "Validate with aspect-ratio batches (rectangular letterbox) to cut padding."
    )
    cache_dir: str | None = setting(
        None,
        "Folder for the label cache and the demo dataset; null uses $DETFORGE_CACHE or "
        "~/.cache/detforge.",
    )


@dataclass
class ModelSection:
    name: str = setting(
        "yolo-n",
        "Model: yolo-{n,s,m} (anchor-free) with optional level suffix -p2 (P2-P5) or -p2lite "
        "(P2-P4), yolov5-{n,s,m} (anchor-based) with optional -p2, a path to a model YAML, or "
        "torchvision's fasterrcnn-r50-fpn, retinanet-r50-fpn, fcos-r50-fpn, "
        "fasterrcnn-mobilenet (resized internally to train.imgsz). task=classify: cnn-s, "
        "efficientnet_b0 or timm:<name> (any timm model; pip install 'detforge[timm]').",
    )
    anchors: Literal["auto"] | None = setting(
        None,
        "Anchor models: null uses the model YAML's anchors; auto fits them to the training "
        "boxes at train.imgsz (k-means, then evolution of the best-possible recall fitness "
        "under assign.anchor_t), prints recall before training; stored in the checkpoint.",
    )
    backbone: str = setting(
        "csp",
        "Backbone: csp (ours), resnet18, resnet34 or resnet50 (torchvision), or timm:<name> "
        "(a timm model with features_only; pip install 'detforge[timm]'). The neck takes its "
        "maps at strides 8/16/32 (and 4 for -p2 models); torchvision/timm backbones get their "
        "ImageNet input normalisation inside the model.",
    )
    backbone_weights: str | None = setting(
        None,
        "Pretrained backbone weights: null (from scratch), imagenet (through torchvision's "
        "cache $TORCH_HOME/hub/checkpoints, or timm's) or a path to the backbone's state dict "
        "(torchvision's detectors: null or imagenet).",
    )
    weights: str | None = setting(
        None,
        "Initialise from a detforge checkpoint (weights only; use train.resume to resume); "
        "task=classify, efficientnet_b0 or timm:<name>: 'imagenet' loads torchvision's or "
        "timm's ImageNet weights; torchvision's detectors: 'coco' loads their COCO weights "
        "with new class layers (from the owning library's cache; offline without the file, an "
        "error naming it).",
    )
    bn_momentum: float = setting(
        0.03,
        "BatchNorm momentum, model-wide (PyTorch convention: weight of the new batch).",
        gt=0,
        le=1,
    )
    bn_eps: float = setting(
        1e-3,
        "BatchNorm epsilon, model-wide (a torchvision/timm backbone keeps its own).",
        gt=0,
    )
    dropout: float = setting(
        0.2, "task=classify: dropout before the classifier's last linear layer.", ge=0, lt=1
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
    degrees: float = setting(0.0, "Random rotation range in degrees (+-).", ge=0, le=180)
    shear: float = setting(0.0, "Random shear range in degrees (+-).", ge=0, le=45)
    perspective: float = setting(
        0.0, "Random perspective distortion (0 to 0.001 typical).", ge=0, le=0.01
    )
    mosaic: float = setting(1.0, "Probability of a 4-image mosaic.", ge=0, le=1)
    mosaic9: float = setting(
        0.0, "Probability of a 9-image mosaic (taken from the mosaic cases).", ge=0, le=1
    )
    mixup: float = setting(0.0, "Probability of mixing a second (mosaic) image in.", ge=0, le=1)
    copy_paste: float = setting(
        0.0,
        "Probability per object of pasting its box region, mirrored, where it covers less than "
        "30% of every other box.",
        ge=0,
        le=1,
    )
    close_mosaic: int = setting(10, "Turn mosaic and mixup off for the last N epochs.", ge=0)
    min_area: float = setting(
        4.0, "Boxes smaller than this many pixels after augmentation are dropped.", ge=0
    )
    min_side: float = setting(2.0, "Boxes with a side below this many pixels are dropped.", ge=0)
    max_aspect: float = setting(20.0, "Boxes more elongated than this are dropped.", ge=1)
    min_visible: float = setting(
        0.1,
        "Boxes keeping less than this fraction of their area inside the image are dropped.",
        ge=0,
        le=1,
    )
    multi_scale: list[float] = setting(
        [],
        "Random image size per batch as [min, max] fractions of imgsz, rounded to the "
        "model stride (e.g. [0.5, 1.5]); empty: fixed size.",
    )
    albumentations: list[dict] = setting(
        [],
        "Extra bbox-aware albumentations transforms, e.g. [{name: Blur, p: 0.1, "
        "blur_limit: 3}] (needs the 'albumentations' extra).",
    )
    crop_scale: float = setting(
        0.35,
        "task=classify: random resized crop keeps this to 1.0 of the image area (aspect 3/4-4/3).",
        gt=0,
        le=1,
    )
    auto_augment: Literal["none", "randaugment", "trivialaugment"] = setting(
        "none", "task=classify: RandAugment or TrivialAugmentWide after the colour jitter."
    )
    cutmix: float = setting(
        0.0,
        "task=classify: probability per batch of CutMix (soft targets; tried before mixup).",
        ge=0,
        le=1,
    )


@dataclass
class LossSection:
    box: float = setting(7.5, "Anchor-free models: gain of the box (IoU) loss.", ge=0)
    cls: float = setting(
        0.5,
        "Gain of the classification loss (anchor models: the 'class' term, scaled as YOLOv5 "
        "by K/80 x 3/levels).",
        ge=0,
    )
    dfl: float = setting(1.5, "Anchor-free models: gain of the distribution focal loss.", ge=0)
    coord: float = setting(
        0.05,
        "Anchor models: gain of the box ('coord', 1 - IoU) term, scaled as YOLOv5 by 3/levels.",
        ge=0,
    )
    conf: float = setting(
        1.0,
        "Anchor models: gain of the objectness ('conf') term, scaled as YOLOv5 by "
        "(imgsz/640)^2 x 3/levels.",
        ge=0,
    )
    balance: list[float] | None = setting(
        None,
        "Anchor models: objectness weight per level, finest first; null: [4.0, 1.0, 0.4] for "
        "3 levels, else the first of [4.0, 1.0, 0.25, 0.06].",
        gt=0,
    )
    iou: Literal["ciou", "giou", "diou", "iou"] = setting(
        "ciou",
        "IoU variant of the box loss (and of the task-aligned assigner's alignment metric; "
        "anchor models: also the objectness target).",
    )
    cls_loss: Literal["bce", "focal"] = setting(
        "bce",
        "Classification loss: binary cross-entropy, or focal loss (Lin et al. 2017); anchor "
        "models: for the objectness term too.",
    )
    focal_gamma: float = setting(2.0, "Focal loss focusing exponent (cls_loss focal).", ge=0)
    focal_alpha: float | None = setting(
        0.25,
        "Focal loss weight of positives, 1-alpha for negatives; null: no weighting.",
        ge=0,
        le=1,
    )
    label_smoothing: float = setting(
        0.0,
        "Label smoothing eps: positive targets scaled by 1-eps, every class gets eps/K.",
        ge=0,
        lt=1,
    )
    cls_weights: str | list[float] | None = setting(
        None,
        "Per-class weights of the classification loss: a list (one per class), 'auto' "
        "(inverse class frequency of the training labels, mean 1), or null.",
    )
    topk: int = setting(10, "Task-aligned assigner: candidate anchors per object.", ge=1)
    alpha: float = setting(0.5, "Task-aligned assigner: exponent of the class score.", ge=0)
    beta: float = setting(6.0, "Task-aligned assigner: exponent of the IoU.", ge=0)


@dataclass
class AssignSection:
    anchor: Literal["ratio", "iou_center"] = setting(
        "ratio",
        "Anchor models: ratio matches every anchor within a size factor anchor_t on every "
        "level, in the object's cell and its two nearest neighbours; iou_center tries every "
        "level and anchor at the object's cell, keeping the best by IoU minus normalised centre "
        "distance (DIoU) and all scoring at least anchor_iou.",
    )
    anchor_t: float = setting(
        4.0,
        "Anchor models: largest width or height factor between an object and an anchor (ratio "
        "matching, and the recall that anchors=auto reports and maximises).",
        gt=1,
    )
    anchor_iou: float = setting(
        0.25, "Anchor models, iou_center matching: DIoU an extra anchor must reach.", gt=0, le=1
    )


@dataclass
class OptimSection:
    name: Literal["sgd", "adam", "adamw", "nadam", "radam", "rmsprop"] = setting(
        "sgd", "Optimizer (torch.optim): sgd, adam, adamw, nadam, radam or rmsprop."
    )
    lr0: float = setting(0.01, "Base learning rate after warmup.", gt=0)
    momentum: float = setting(
        0.937, "SGD / RMSprop momentum, or beta1 of the Adam family.", ge=0, lt=1
    )
    beta2: float = setting(0.999, "beta2 of the Adam family.", ge=0, lt=1)
    eps: float = setting(1e-8, "Denominator epsilon of the Adam family and RMSprop.", gt=0)
    rmsprop_alpha: float = setting(0.99, "RMSprop smoothing constant.", gt=0, lt=1)
    nesterov: bool = setting(True, "Nesterov momentum (SGD only).")
    weight_decay: float = setting(
        5e-4,
        "Weight decay (decoupled for adamw, L2 for the others) on conv/linear weights.",
        ge=0,
    )
    no_decay_norm_bias: bool = setting(
        True, "Exempt normalisation weights and all biases from weight decay."
    )
    groups: list[dict] = setting(
        [],
        "Parameter groups by module-name pattern (fnmatch), first match wins: "
        "[{match: 'backbone.*', lr_mult: 0.1, wd_mult: 1.0}, ...]; unmatched parameters form "
        "the default group; a pattern that matches nothing is an error.",
    )
    freeze: list[str] = setting(
        [], "Parameter-name patterns (fnmatch) to freeze, e.g. ['backbone.*']."
    )
    unfreeze_at: int | None = setting(
        None, "Epoch (1-based) at whose start frozen parameters start training.", ge=1
    )
    wd_batch_ref: int | None = setting(
        64,
        "weight_decay is stated for this many images per optimizer step and scaled linearly "
        "with the real effective batch; null applies it unscaled.",
        ge=1,
    )


@dataclass
class ScheduleSection:
    name: Literal[
        "cosine",
        "linear",
        "step",
        "multistep",
        "exponential",
        "polynomial",
        "onecycle",
        "constant",
        "plateau",
    ] = setting("cosine", "Learning-rate schedule after warmup.")
    interval: Literal["step", "epoch"] = setting(
        "step", "Update the learning rate every optimizer step or once per epoch."
    )
    lrf: float = setting(
        0.01, "cosine / linear / polynomial: final lr as a fraction of lr0.", ge=0, le=1
    )
    min_lr: float | None = setting(
        None,
        "cosine / linear / polynomial / plateau: final (floor) lr, absolute; overrides lrf.",
        ge=0,
    )
    step_size: float = setting(
        30.0, "step: epochs between decays (fractions allowed with interval step).", gt=0
    )
    milestones: list[float] = setting([60.0, 80.0], "multistep: epochs at which lr decays.")
    gamma: float = setting(0.1, "step / multistep / exponential: decay factor.", gt=0, le=1)
    power: float = setting(1.0, "polynomial: exponent of the decay.", gt=0)
    pct_start: float = setting(0.3, "onecycle: fraction of the run spent increasing.", gt=0, lt=1)
    div_factor: float = setting(25.0, "onecycle: lr0 / initial lr.", ge=1)
    final_div_factor: float = setting(1e4, "onecycle: initial lr / final lr.", ge=1)
    anneal: Literal["cos", "linear"] = setting("cos", "onecycle: annealing shape.")
    monitor: str = setting(
        "val/loss", "plateau: what to watch, a metric (map50_95, ...), 'fitness' or 'val/loss'."
    )
    mode: Literal["auto", "min", "max"] = setting(
        "auto",
        "plateau: whether the monitored value should fall or rise (auto: min for val/ losses, "
        "max for metrics and fitness).",
    )
    factor: float = setting(0.1, "plateau: lr multiplier on a plateau.", gt=0, lt=1)
    patience: int = setting(10, "plateau: validations without improvement before a cut.", ge=0)
    cooldown: int = setting(0, "plateau: validations to wait after a cut.", ge=0)
    threshold: float = setting(1e-4, "plateau: minimum change that counts as improvement.", ge=0)
    threshold_mode: Literal["rel", "abs"] = setting(
        "rel", "plateau: threshold relative or absolute."
    )
    warmup_epochs: float = setting(
        3.0, "Warmup length in epochs (0: none); warmup_iters overrides it.", ge=0
    )
    warmup_iters: int | None = setting(
        None, "Warmup length in optimizer steps (overrides warmup_epochs).", ge=0
    )
    warmup_fraction: float | None = setting(
        None,
        "Warmup length as a fraction of all training steps (overrides the other two).",
        ge=0,
        lt=1,
    )
    warmup_method: Literal["linear", "constant"] = setting(
        "linear", "Warmup: linear ramp from warmup_start_factor*lr, or constant at that value."
    )
    warmup_start_factor: float = setting(
        0.0, "Learning rate at the start of warmup, as a fraction of the scheduled lr.", ge=0, le=1
    )
    warmup_momentum: float = setting(0.8, "Momentum at the start of warmup.", ge=0, lt=1)
    warmup_bias_factor: float | None = setting(
        10.0,
        "Learning rate of bias parameters at the start of warmup, as a multiple of their "
        "group's lr (10: 0.1 at optim.lr0 0.01); null: bias groups warm up as weights.",
        ge=0,
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
class EarlyStopSection:
    monitor: str = setting(
        "fitness", "Value to watch: 'fitness', a validation metric (map50_95, ...) or 'val/loss'."
    )
    mode: Literal["auto", "min", "max"] = setting(
        "auto",
        "Whether the monitored value should fall or rise (auto: min for val/ losses, max for "
        "metrics and fitness).",
    )
    patience: int | None = setting(
        None,
        "Validations without improvement before training stops; null: never stop early.",
        ge=1,
    )
    min_delta: float = setting(0.0, "Smallest change that counts as an improvement.", ge=0)


@dataclass
class TrainSection:
    task: Literal["detect", "classify"] = setting(
        "detect",
        "detect: object detection (YOLO data.yaml); classify: image classification (an "
        "ImageFolder train/<class>/ folder or a 'task: classify' data.yaml, model cnn-s, "
        "efficientnet_b0 or timm:<name>).",
    )
    epochs: int = setting(
        100, "Training epochs (with train.time: the most the time budget may fit).", ge=1
    )
    time: float | None = setting(
        None,
        "Time budget in hours (e.g. 1.5): after each epoch the epoch count is fitted to it "
        "from the measured epoch time (training, validation, checkpoints), the lr schedule, "
        "close_mosaic and stages are re-planned over the fitted run, and the run ends with a "
        "whole last epoch, its validation and checkpoints inside the budget. train.epochs "
        "stays an upper bound; null: no budget.",
        gt=0,
    )
    batch: int | Literal["auto"] = setting(
        16,
        "Images per batch (per process). auto: on CUDA the largest batch whose forward/backward "
        "fits train.auto_batch_fraction of the GPU memory; on CPU the batch with the most "
        "images/s within that fraction of the available RAM; the number chosen is saved in "
        "config.yaml and checkpoints.",
        ge=1,
    )
    auto_batch_fraction: float = setting(
        0.6,
        "batch=auto: fraction of the GPU memory (CUDA) or of the available RAM (CPU) a "
        "training step may take.",
        gt=0,
        le=1,
    )
    accumulate: int = setting(
        1, "Batches whose gradients are summed before each optimizer step.", ge=1
    )
    nominal_batch: int | None = setting(
        None,
        "Images per optimizer step; sets accumulate = round(nominal_batch / (batch x world "
        "size)); conflicts with an explicit accumulate.",
        ge=1,
    )
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
    dist_timeout: int = setting(
        180,
        "Minutes a process waits for the others under torchrun before the run fails (the "
        "main process validates and writes the report while the others wait).",
        ge=1,
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
    stages: list[dict] = setting(
        [],
        "Progressive resizing: [{epochs: 30, imgsz: 320, batch: 32}, ...]; the stages' "
        "epochs must add up to train.epochs; the lr schedule runs across stages.",
    )
    val_interval: int = setting(1, "Validate every N epochs (and always after the last).", ge=1)
    save_period: int | None = setting(
        None, "Also keep weights/epochN.pt every N epochs; null: only last.pt and best.pt.", ge=1
    )
    fitness: dict[str, float] = setting(
        {"map50": 0.1, "map50_95": 0.9},
        "Weights of validation metrics whose sum chooses best.pt (task=classify default: "
        "{top1: 1.0}).",
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
    augment: bool = setting(
        False,
        "detforge val: test-time augmentation with the tta.* settings (never during "
        "training's per-epoch validation).",
    )
    report: bool = setting(
        True,
        "At the end of training: P/R/F1, curves, confusion matrix, TIDE diagnosis and "
        "report.html in the run folder (task=classify, also for detforge val: the "
        "confusion-matrix PNG and report.html; the CSV and hardest.json are always written).",
    )


# Test-time augmentation views (eval/tta.py builds them).
TTA_VIEWS = ("flip", "vflip", "scale", "rot90")


@dataclass
class TTASection:
    transforms: list[str] = setting(
        ["flip", "scale"],
        "Test-time augmentation views: flip, vflip, scale (one view per tta.scales entry) and "
        "rot90 (90/180/270 degrees, for overhead imagery).",
    )
    scales: list[float] = setting(
        [0.83, 1.0, 1.2], "Image scales of the 'scale' view (rounded to the model stride).", gt=0
    )
    merge: Literal["nms", "wbf"] = setting(
        "wbf", "How views (and ensembled weights) merge: class-aware NMS or weighted box fusion."
    )
    wbf_iou: float = setting(0.55, "IoU that clusters boxes in weighted box fusion.", gt=0, le=1)


@dataclass
class PredictSection:
    conf: float = setting(0.25, "Confidence threshold for predictions.", ge=0, le=1)
    iou: float = setting(0.7, "IoU threshold of class-aware NMS.", gt=0, le=1)
    max_det: int = setting(300, "Maximum detections per image.", ge=1)
    save_images: bool = setting(True, "Write annotated images.")
    save_txt: bool = setting(True, "Write YOLO txt labels (class cx cy w h conf, normalised).")
    save_json: bool = setting(True, "Write predictions.json in COCO results format.")
    augment: bool = setting(False, "Test-time augmentation with the tta.* settings.")
    rect: bool = setting(
        True,
        "Letterbox predict and serve inputs to the smallest rectangle of stride multiples that "
        "holds them (a 640x512 frame at 320: 320x256), not the imgsz square: same resize, "
        "fewer padded pixels to run. An ONNX file with a fixed input size takes the square.",
    )
    precision: Literal["fp32", "bf16", "fp16", "auto"] = setting(
        "auto",
        "Inference precision of predict, serve and benchmark (and the default of the Python "
        "API's Detector.load): auto = bf16 autocast on CPUs with "
        "AVX-512-BF16 or AMX (measured faster there, mAP50-95 within 1% of fp32: BENCHMARKS.md, "
        "Predict under load), else fp32 (CUDA included); fp32; bf16; fp16 (CUDA only).",
    )


@dataclass
class TrackSection:
    loggers: list[Literal["tensorboard", "mlflow", "wandb"]] = setting(
        [],
        "Experiment trackers, e.g. track=tensorboard,mlflow (extras [track]); only those "
        "named run, and one that fails is switched off with a warning while training goes on.",
    )
    every_steps: int = setting(
        10, "Log losses, learning rates and gradient norm every N optimizer steps.", ge=1
    )
    mlflow_uri: str | None = setting(
        None,
        "MLflow tracking URI; null: a local file store in the run folder (run_dir/mlruns).",
    )
    wandb_mode: Literal["offline", "online"] = setting(
        "offline", "W&B mode: offline writes run_dir/wandb only (no login, no network)."
    )


@dataclass
class RunConfig:
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    augment: AugmentSection = field(default_factory=AugmentSection)
    loss: LossSection = field(default_factory=LossSection)
    assign: AssignSection = field(default_factory=AssignSection)
    optim: OptimSection = field(default_factory=OptimSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    clip: ClipSection = field(default_factory=ClipSection)
    early_stop: EarlyStopSection = field(default_factory=EarlyStopSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)
    predict: PredictSection = field(default_factory=PredictSection)
    tta: TTASection = field(default_factory=TTASection)
    track: TrackSection = field(default_factory=TrackSection)


# Short names for the settings people type every day.
ALIASES: dict[str, str] = {
    "data": "data.path",
    "model": "model.name",
    "epochs": "train.epochs",
    "time": "train.time",
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
    "weights": "model.weights",
    "track": "track.loggers",
    "anchors": "model.anchors",
    "backbone": "model.backbone",
    "backbone_weights": "model.backbone_weights",
    "loss.class": "loss.cls",
    "task": "train.task",
}

# Settings applied when no data.yaml is given, below anything the user sets.
DEMO_PRESET: dict[str, dict] = {
    "train": {"imgsz": 256, "epochs": 15, "batch": 16},
    "schedule": {"warmup_epochs": 1.0},
}

# The module that acts on each setting (``detforge config`` shows it): per section, with the keys
# that another module handles listed by full name. A test checks that each module exists and
# names its keys.
CONSUMERS: dict[str, str] = {
    "data": "detforge.engine.setup_data",
    "model": "detforge.models.factory",
    "model.weights": "detforge.engine.checkpoint",
    "model.anchors": "detforge.engine.anchors",
    "model.dropout": "detforge.engine.classify_task",
    "augment.crop_scale": "detforge.engine.classify_task",
    "augment.auto_augment": "detforge.engine.classify_task",
    "augment.cutmix": "detforge.engine.classify_task",
    "train.task": "detforge.engine.tasks",
    "assign": "detforge.losses.anchor",
    "augment": "detforge.data.augment.core",
    "augment.close_mosaic": "detforge.engine.setup_data",
    "augment.albumentations": "detforge.engine.setup_data",
    "augment.multi_scale": "detforge.engine.stages",
    "loss": "detforge.losses.detection",
    "loss.coord": "detforge.losses.anchor",
    "loss.conf": "detforge.losses.anchor",
    "loss.balance": "detforge.losses.anchor",
    "optim": "detforge.engine.optim",
    "optim.freeze": "detforge.engine.freeze",
    "optim.unfreeze_at": "detforge.engine.freeze",
    "schedule": "detforge.engine.schedule",
    "clip": "detforge.engine.gradients",
    "early_stop": "detforge.engine.early_stop",
    "train": "detforge.engine.trainer",
    "train.accumulate": "detforge.engine.optim",
    "train.nominal_batch": "detforge.engine.optim",
    "train.stages": "detforge.engine.stages",
    "train.time": "detforge.engine.budget",
    "train.batch": "detforge.engine.auto_batch",
    "train.auto_batch_fraction": "detforge.engine.auto_batch",
    "train.project": "detforge.engine.setup_train",
    "train.name": "detforge.engine.setup_train",
    "train.exist_ok": "detforge.engine.setup_train",
    "train.imgsz": "detforge.engine.setup_train",
    "train.ema_decay": "detforge.engine.setup_train",
    "train.ema_tau": "detforge.engine.setup_train",
    "train.max_nonfinite": "detforge.engine.setup_train",
    "train.val_interval": "detforge.engine.train_hooks",
    "train.save_period": "detforge.engine.train_hooks",
    "train.fitness": "detforge.engine.train_hooks",
    "train.device": "detforge.infer.device",
    "train.amp": "detforge.infer.device",
    "train.seed": "detforge.engine.state",
    "train.deterministic": "detforge.engine.state",
    "eval": "detforge.engine.setup_data",
    "eval.save_json": "detforge.engine.tasks",
    "eval.report": "detforge.engine.tasks",
    "eval.augment": "detforge.cli.val",
    "predict": "detforge.cli.predict",
    "tta": "detforge.infer.tta",
    "track": "detforge.track.hooks",
}


def consumer_of(key: str) -> str:
    """The module that acts on ``key`` (``"section.key"``)."""
    return CONSUMERS.get(key) or CONSUMERS[key.split(".", 1)[0]]
