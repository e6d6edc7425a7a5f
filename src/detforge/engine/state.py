"""Seeding and the random-number state saved in checkpoints for exact resume."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["seed_everything", "rng_state", "restore_rng_state", "set_deterministic"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def set_deterministic(enabled: bool) -> None:
    """Deterministic kernels; warn (do not fail) where an op has no deterministic version."""
    if enabled and torch.cuda.is_available():
        # cuBLAS needs a fixed workspace to be deterministic; only read when CUDA initialises
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled


def rng_state() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _numpy_state() -> tuple:
    """numpy's legacy state with its key as a tensor: checkpoints hold no numpy objects, so
    they load with ``torch.load(weights_only=True)``."""
    name, key, *rest = np.random.get_state()
    return (name, torch.from_numpy(key.astype(np.int64)), *rest)


def restore_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, key, *rest = state["numpy"]
    if isinstance(key, torch.Tensor):
        key = key.numpy().astype(np.uint32)
    np.random.set_state((name, key, *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
