"""Latency and throughput of a detector per format and input size, measured end to end through
:class:`~detforge.api`-style inference (letterbox, forward, decode, NMS, rescale).

Per image at batch 1: the first ``warmup`` calls are reported apart (first-call cost: memory
allocation, kernel selection) and left out of the median and 90th percentile of the next
``runs`` calls. Throughput: images per second of batches of 8, median over ``runs // 4 + 1``
batches after one warm-up batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Timing", "LatencyStats", "time_per_image", "time_detector", "format_table"]


@dataclass
class Timing:
    format: str
    imgsz: int
    warmup_ms: float  # the first call
    median_ms: float  # per image, batch 1, after warm-up
    p90_ms: float
    images_per_s_b8: float
    runs: int
    precision: str = "fp32"
    map50_95: float | None = None
    map50: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class LatencyStats:
    """Per-call times of ``warmup + runs`` calls: the warm-up calls apart, the rest summarised."""

    first_ms: float  # the very first call (first-call costs), warm-up or not
    warmup_ms: list[float]  # each warm-up call, in order
    median_ms: float  # of the timed calls after warm-up
    p90_ms: float
    runs: int


def time_per_image(
    predict_one: Callable[[np.ndarray], object],
    images: Sequence[np.ndarray],
    warmup: int = 3,
    runs: int = 20,
) -> LatencyStats:
    """Call ``predict_one`` on one image at a time, cycling through ``images``: ``warmup`` calls
    left out of the statistics, then ``runs`` calls whose median and 90th percentile are the
    latency (``detforge benchmark`` and bench/latency_compare.py both measure this way)."""
    if runs < 1:
        raise ValueError(f"runs: expected at least 1, got {runs}")
    times = []
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        predict_one(images[i % len(images)])
        times.append((time.perf_counter() - t0) * 1000)
    steady = np.array(times[warmup:])
    median, p90 = float(np.median(steady)), float(np.percentile(steady, 90))
    return LatencyStats(times[0], times[:warmup], median, p90, runs)


def time_detector(
    predict: Callable[[list[np.ndarray], int], object],
    images: Sequence[np.ndarray],
    fmt: str,
    imgsz: int,
    warmup: int = 3,
    runs: int = 20,
    precision: str = "fp32",
) -> Timing:
    """predict(images, batch): runs the whole pipeline on RGB arrays (decoded once up front, so
    file reading is not timed)."""
    stats = time_per_image(lambda img: predict([img], 1), images, warmup, runs)
    batch = [images[i % len(images)] for i in range(8)]
    predict(batch, 8)
    per_batch = []
    for _ in range(runs // 4 + 1):
        t0 = time.perf_counter()
        predict(batch, 8)
        per_batch.append(time.perf_counter() - t0)
    return Timing(
        fmt, imgsz, stats.first_ms, stats.median_ms, stats.p90_ms, 8 / float(np.median(per_batch)),
        runs, precision,
    )  # fmt: skip


def format_table(rows: Sequence[Timing]) -> str:
    """One line per (format, precision, imgsz)."""
    head = f"{'format':<8}{'prec':>5}{'imgsz':>6}{'warm-up ms':>12}{'median ms':>11}{'p90 ms':>9}"
    head += f"{'img/s (b8)':>12}{'mAP50-95':>10}{'mAP50':>8}"
    lines = [head]
    for r in rows:
        m = "" if r.map50_95 is None else f"{r.map50_95:>10.4f}{r.map50:>8.4f}"
        lines.append(
            f"{r.format:<8}{r.precision:>5}{r.imgsz:>6}{r.warmup_ms:>12.1f}{r.median_ms:>11.1f}{r.p90_ms:>9.1f}"
            f"{r.images_per_s_b8:>12.1f}{m}"
        )
    return "\n".join(lines)
