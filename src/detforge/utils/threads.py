"""CPU thread behaviour shared by the command line and the Python API."""

from __future__ import annotations

import os
import sys

__all__ = ["prefer_passive_openmp"]


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
