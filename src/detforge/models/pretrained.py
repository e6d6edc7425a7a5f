"""Pretrained backbone weights, loaded only when asked: torchvision's weight enums through
torchvision's own cache (``$TORCH_HOME/hub/checkpoints``), or a local state-dict file.

A file missing from the cache is fetched by torchvision once; when that fails (offline), the
error names the file and the folder to put it in. The fetch runs under a socket timeout so an
unreachable network is an error after at most ``timeout`` seconds, not a hang.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = ["cached_weight_file", "torchvision_state", "local_state"]


def cached_weight_file(weights: Any) -> Path:
    """Where torchvision keeps the file of a weight enum (it may not exist yet)."""
    from torch.hub import get_dir

    return Path(get_dir()) / "checkpoints" / Path(weights.url).name


def torchvision_state(weights: Any, timeout: float = 30.0) -> dict[str, Tensor]:
    """A torchvision weight enum's state dict from its cache; offline, a clear error."""
    file = cached_weight_file(weights)
    if not file.is_file():
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(timeout)
        try:
            return weights.get_state_dict(progress=False, check_hash=True)
        except Exception as e:  # offline: URLError, socket errors, timeouts, ...
            raise FileNotFoundError(
                f"pretrained weights {file.name} are not in the cache ({file}) and could not "
                f"be downloaded ({e.__class__.__name__}: {e}); put the file in {file.parent} "
                f"(from {weights.url}) and run again"
            ) from None
        finally:
            socket.setdefaulttimeout(old)
    return torch.load(file, map_location="cpu", weights_only=True)


def local_state(path: str | Path, key: str) -> dict[str, Tensor]:
    """A state dict saved with ``torch.save`` (tensors only: nothing in it may run code)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{key}: weight file {file} does not exist")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{key}: {file} is not a readable state dict ({e})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{key}: {file} does not hold a state dict (name -> tensor)")
    return state
