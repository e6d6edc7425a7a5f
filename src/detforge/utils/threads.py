"""CPU thread behaviour shared by the command line and the Python API."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["prefer_passive_openmp", "inference_threads", "intra_op_threads"]


def prefer_passive_openmp() -> bool:
    """Make idle OpenMP threads sleep instead of spin, if it can still take effect.

    On CPU, torch's intra-op threads share the cores with DataLoader workers and with other
    processes; spinning threads steal those cores, and small ops slowed down 100x here under
    such load (a BatchNorm call on a 4x32x32x32 tensor: 47 ms spinning, 0.17 ms passive; see
    bench/api_busy_epoch.py for a whole epoch). The OpenMP runtime reads OMP_WAIT_POLICY once,
    when torch loads it, so this only acts before torch is imported; a user's own
    OMP_WAIT_POLICY wins. Called at the start of a run (``detforge`` commands,
    ``detforge.train``, ``Detector.load``), never at import.

    Returns True when the passive policy is in force for this process.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"


def inference_threads(requested: int | None = None) -> int | None:
    """torch's intra-op thread count for inference through the Python API; None keeps torch's.

    requested: a count (> 0), 0 for torch's own, or None to choose: torch's own when idle
    OpenMP threads sleep. Otherwise torch was imported before detforge and OpenMP (GNU libgomp in
    torch's wheels) spins: its threads busy-wait up to 300000 times at every barrier, and a team
    with one thread on a core shared with another process then stalls for seconds per image.
    libgomp cuts that spin to 100 when it runs more threads than available CPUs (its
    documented GOMP_SPINCOUNT rule), so inference runs on one thread more than the CPUs this
    process may use. Measured on a busy 2-core machine (bench/api_busy_predict.py, BENCHMARKS.md
    "Predict under load"): a median near the passive policy's, where one thread was 2.6-5.3x
    slower with another process spinning on one core.
    """
    if requested is not None:
        if requested < 0:
            raise ValueError(f"threads: expected 0 (torch's count) or more, got {requested}")
        return requested or None
    if prefer_passive_openmp():
        return None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cpus or 1) + 1


@contextmanager
def intra_op_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` (process-wide), restoring the count after;
    None leaves it alone."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
