"""Checkpoint files: atomic writes and a clear error when a checkpoint does not fit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..utils.atomic import atomic_write

__all__ = [
    "save_atomic",
    "load_checkpoint",
    "load_model_state",
    "load_initial_weights",
    "CheckpointError",
]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model; names the file."""


def save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """torch.save into a temp file in the same folder, fsync, then rename over ``path``.

    A crash mid-write leaves the previous file intact: readers only ever see whole checkpoints.
    """
    atomic_write(path, lambda f: torch.save(obj, f))


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a detforge checkpoint (a dict with at least ``model_spec`` and ``model``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # torch raises many types for corrupt files
        raise CheckpointError(f"checkpoint {path} cannot be read: {e}") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_spec" not in ckpt:
        raise CheckpointError(f"{path} is not a detforge checkpoint (no 'model' / 'model_spec')")
    return ckpt


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
    load_model_state(model, init.get("ema") or init["model"], f"model.weights {path}")
