"""Device and mixed-precision selection."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from ..config.fields import ConfigError

__all__ = ["select_device", "resolve_amp", "resolve_precision", "autocast", "cpu_has_fast_bf16"]


def select_device(spec: str) -> torch.device:
    """``auto`` picks CUDA when present; ``cuda:N`` must exist."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device: {spec!r} requested but CUDA is not available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                f"train.device: {spec!r} but only {torch.cuda.device_count()} GPU(s) are visible"
            )
    return dev


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with native bf16 matrix instructions (AVX-512-BF16 or AMX).

    Measured on a 2-core AMD EPYC with AVX-512-BF16 (bench/cpu_precision.py): a whole yolo-n
    training step at 416 px ran 1.78x faster under bf16 autocast than in fp32, so
    ``amp=auto`` uses bf16 there. Without these instructions bf16 is emulated and slower.
    """
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    for name in probes:
        fn = getattr(torch.cpu, name, None)
        if fn is not None:
            with contextlib.suppress(Exception):
                if fn():
                    return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_amp(mode: str, device: torch.device, key: str = "train.amp") -> torch.dtype | None:
    """Autocast dtype for ``train.amp`` (or the setting ``key``) on ``device``; None means fp32.

    mode: off | auto | bf16 | fp16; ``fp32`` is read as ``off`` (``predict.precision``).
    """
    if mode in ("off", "fp32"):
        return None
    if device.type == "cuda":
        if mode == "bf16" and not torch.cuda.is_bf16_supported():
            raise ConfigError(f"{key}: bf16 requested but this GPU does not support it")
        if mode == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if mode == "bf16" else torch.float16
    if device.type == "cpu":
        if mode == "fp16":
            raise ConfigError(f"{key}: fp16 autocast is not supported on CPU; use bf16 or off")
        if mode == "bf16":
            return torch.bfloat16
        return torch.bfloat16 if cpu_has_fast_bf16() else None
    if mode == "auto":
        return None
    raise ConfigError(f"{key}: {mode} is not supported on device {device}")


def resolve_precision(
    precision: str, device: torch.device, key: str = "predict.precision"
) -> torch.dtype | None:
    """Autocast dtype for inference (``predict.precision``); None means fp32.

    auto: bf16 on CPUs with AVX-512-BF16 or AMX, where yolo-n predicted faster than in fp32 (batch
    1 and batch 8, 320 and 640 px) with mAP50-95 within 1% of fp32 on hituav (BENCHMARKS.md,
    "Predict under load"); fp32 on other CPUs and on CUDA (not measured there: ask for bf16 or
    fp16). fp32, bf16, fp16: as :func:`resolve_amp`.
    """
    if precision == "auto":
        return torch.bfloat16 if device.type == "cpu" and cpu_has_fast_bf16() else None
    return resolve_amp(precision, device, key)


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast context for the forward pass (a no-op when dtype is None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
