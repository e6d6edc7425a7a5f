"""The one checkpoint format: written by training, read for resume, ``val``, ``predict`` and
``Detector.load`` through the same functions, so only this module knows the layout.

Layout of ``detforge-checkpoint-2`` (a dict of plain types and tensors)::

    format        "detforge-checkpoint-2"
    task          "detect" or "classify" (absent in checkpoints written before classification:
                  detect)
    model_spec    detect: ModelSpec as a dict (an anchor head's anchors included, also in the
                  weights as head.anchors), or TVDetectorSpec (name, imgsz, arch
                  "torchvision", frozen_bn) for torchvision's detectors; classify:
                  ClassifierSpec (name, num_classes, dropout); num_classes, names: the classes
    config        every resolved setting (config_to_dict)
    run_dir       the run folder the checkpoint was written for (str)
    metrics       validation metrics of the epoch ({} if it was not validated)
    model         state dict of the trained model
    ema           {"module": state dict, "updates": int} or None (the EMA is stored once)
    train         trainer state for resume: optimizer, scaler, epoch, batch_in_epoch, step,
                  best_fitness, best_epoch, schedule, skipped_steps, rng, epoch_sums, hooks

Format 1 (``detforge-checkpoint-1``: trainer state at the top level, EMA weights twice as
``ema`` and ``ema_state``, ``early_stop`` beside them) is converted to this layout on reading.

Files are read with ``torch.load(weights_only=True)``: unpickling may only build tensors and
plain containers (plus numpy arrays, for the RNG state of format 1); anything else is refused
with an error naming the file, so a crafted checkpoint cannot run code.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..models.classifier import ClassifierSpec, ImageClassifier, build_classifier
from ..models.norm import set_batchnorm
from ..models.tv_detectors import TorchvisionDetector, TVDetectorSpec
from ..models.yolo import ModelSpec, YOLODetector
from ..utils.atomic import atomic_write

__all__ = [
    "FORMAT",
    "CheckpointError",
    "save_atomic",
    "load_checkpoint",
    "load_model_state",
    "model_weights",
    "saved_config",
    "model_from_checkpoint",
    "build_checkpoint",
    "load_initial_weights",
    "checkpoint_task",
]

FORMAT = "detforge-checkpoint-2"
_OLD_FORMAT = "detforge-checkpoint-1"

# numpy's RNG state of format-1 checkpoints is a uint32 array; these only rebuild arrays
_SAFE_GLOBALS = [
    np._core.multiarray._reconstruct,
    np._core.multiarray.scalar,
    np.ndarray,
    np.dtype,
    type(np.dtype(np.uint32)),
    type(np.dtype(np.float64)),
]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model; names the file."""


def save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """torch.save into a temp file in the same folder, fsync, then rename over ``path``.

    A crash mid-write leaves the previous file intact: readers only ever see whole checkpoints.
    The checkpoint is serialised in memory first, so a full disk surfaces as the file system's
    own error (a :class:`~detforge.utils.atomic.WriteError`), not as torch's writer failing.
    """
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(path, lambda f: f.write(buf.getbuffer()))


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a detforge checkpoint (either format) as a format-2 dict (see the module doc)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with torch.serialization.safe_globals(_SAFE_GLOBALS):
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or unsafe files
        text = str(e)
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if unsafe:
            raise CheckpointError(
                f"checkpoint {path} holds an object of type {unsafe.group(1)}, not only tensors "
                "and plain values; refusing to unpickle it, as that could run code"
            ) from None
        reason = re.search(r"WeightsUnpickler error:\s*(.+)", text)
        first = reason.group(1) if reason else (text.strip().splitlines() or [repr(e)])[0]
        raise CheckpointError(f"checkpoint {path} cannot be read: {first}") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_spec" not in ckpt:
        raise CheckpointError(f"{path} is not a detforge checkpoint (no 'model' / 'model_spec')")
    fmt = ckpt.get("format", _OLD_FORMAT)
    if fmt == _OLD_FORMAT:
        return _from_format_1(ckpt)
    if fmt != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {fmt!r} (this is {FORMAT})")
    return ckpt


def _from_format_1(old: dict) -> dict:
    """Format 1 -> 2: trainer state under ``train``, the EMA once, early stopping as a hook."""
    keys = ("model_spec", "num_classes", "names", "config", "model", "metrics")
    new = {k: old[k] for k in keys if k in old}
    new.update(format=FORMAT, run_dir=None, metrics=old.get("metrics") or {})
    ema_state = old.get("ema_state")
    if ema_state is None and old.get("ema") is not None:
        ema_state = {"module": old["ema"], "updates": 0}
    new["ema"] = ema_state
    if "optimizer" in old:
        train = {k: old[k] for k in _TRAIN_KEYS if k in old}
        train.setdefault("skipped_steps", 0)
        train["epoch_sums"] = None
        train["hooks"] = {"EarlyStopHook": old["early_stop"]} if "early_stop" in old else {}
        new["train"] = train
    return new


_TRAIN_KEYS = (
    "optimizer", "scaler", "epoch", "batch_in_epoch", "step", "best_fitness", "best_epoch",
    "schedule", "skipped_steps", "rng",
)  # fmt: skip


def build_checkpoint(
    model: nn.Module,
    ema_state: dict | None,
    names: list[str],
    config: dict,
    run_dir: str | os.PathLike,
    metrics: dict | None = None,
    train_state: dict | None = None,
) -> dict:
    """A format-2 checkpoint. model: the trained module (a ``YOLODetector`` or an
    ``ImageClassifier``); ema_state: ``ModelEMA.state_dict()``; train_state:
    ``Trainer.state_dict()`` (None for weights only)."""
    return {
        "format": FORMAT,
        "task": "classify" if isinstance(model, ImageClassifier) else "detect",
        "model_spec": asdict(model.spec),
        "num_classes": model.nc,
        "names": list(names),
        "config": config,
        "run_dir": str(run_dir),
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
        "model": model.state_dict(),
        "ema": ema_state,
        "train": train_state,
    }


def saved_config(ckpt: dict) -> dict:
    """The run's settings stored in a checkpoint, without ``train.resume`` (a base for the
    settings of a resumed run, or of val / predict on the checkpoint)."""
    base = dict(ckpt.get("config") or {})
    base["train"] = {k: v for k, v in base.get("train", {}).items() if k != "resume"}
    return base


def model_weights(ckpt: dict) -> dict:
    """The weights to infer with: the EMA's when the run kept one, else the model's."""
    return ckpt["ema"]["module"] if ckpt.get("ema") else ckpt["model"]


def checkpoint_task(ckpt: dict) -> str:
    """``"detect"`` or ``"classify"``: what the checkpoint's model does."""
    return str(ckpt.get("task", "detect"))


def model_from_checkpoint(
    ckpt: dict, source: str
) -> YOLODetector | TorchvisionDetector | ImageClassifier:
    """The architecture saved in ``ckpt`` with its inference weights (EMA when present)."""
    saved = ckpt["model_spec"]
    if saved.get("arch") == "torchvision":
        model = TorchvisionDetector(TVDetectorSpec(**saved), ckpt["num_classes"])
        load_model_state(model, model_weights(ckpt), source)
        return model
    if checkpoint_task(ckpt) == "classify":
        spec = ClassifierSpec(**saved)
        model = build_classifier(spec.name, spec.num_classes, spec.dropout, weights=None)
        load_model_state(model, model_weights(ckpt), source)
        return model
    spec = ModelSpec(
        **{
            **saved,
            "channels": tuple(saved["channels"]),
            "blocks": tuple(saved["blocks"]),
            "levels": tuple(saved["levels"]),
            "anchors": tuple(tuple(a) for a in saved.get("anchors", ())),
        }
    )
    model = YOLODetector(spec, ckpt["num_classes"])
    # BatchNorm eps is not in the state dict: restore the one the model was trained with
    model_cfg = (ckpt.get("config") or {}).get("model", {})
    set_batchnorm(model, model_cfg.get("bn_momentum"), model_cfg.get("bn_eps"))
    load_model_state(model, model_weights(ckpt), source)
    return model


def load_model_state(model: nn.Module, state: dict, source: str) -> None:
    """Load a state dict, naming missing, unexpected and mis-shaped tensors on failure."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or shape:
        parts = []
        if shape:
            parts.append(f"{len(shape)} shape mismatch(es), e.g. {shape[0]}")
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {missing[0]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[0]}")
        raise CheckpointError(f"{source} does not fit this model: " + "; ".join(parts))
    model.load_state_dict(state)


def load_initial_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """``model.weights``: start from a checkpoint's weights (its EMA when it has one)."""
    init = load_checkpoint(path)
    load_model_state(model, model_weights(init), f"model.weights {path}")
