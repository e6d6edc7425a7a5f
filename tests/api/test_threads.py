"""The Python API avoids spinning OpenMP stalls: when detforge is imported first OpenMP gets a
passive wait policy; when torch was imported first (too late for that) predict runs on one
intra-op thread more than the CPUs (libgomp's throttled spinning) and restores the caller's
count. Checked in fresh interpreters, without OMP_WAIT_POLICY in their environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import detforge

CHILD = r"""
import json, os, sys
order, weights, threads = sys.argv[1], sys.argv[2], sys.argv[3]
if order == "torch-first":
    import torch
import numpy as np
import detforge
kw = {} if threads == "auto" else {"threads": int(threads)}
det = detforge.Detector.load(weights, device="cpu", imgsz=64, **kw)
import torch  # after Detector.load: in "detforge-first" detforge loads it
seen = []
forward = det.model.forward
det.model.forward = lambda x: (seen.append(torch.get_num_threads()), forward(x))[1]
torch.set_num_threads(2)
det.predict(np.zeros((64, 64, 3), np.uint8))
cpus = len(os.sched_getaffinity(0))
print(json.dumps({"threads": det.threads, "during": seen, "after": torch.get_num_threads(),
                  "policy": os.environ.get("OMP_WAIT_POLICY"), "cpus": cpus}))
"""


@pytest.fixture(scope="module")
def weights(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("threads_runs")
    settings = {
        "data.path": str(tiny_data), "train.imgsz": 64, "train.batch": 8, "train.epochs": 1,
        "data.workers": 0, "train.project": str(out), "data.cache_dir": str(out / "cache"),
        "train.progress": False, "train.amp": "off", "eval.report": False,
    }  # fmt: skip
    return detforge.train(**settings).run_dir / "weights" / "best.pt"


def _child(order: str, weights: Path, threads: str = "auto") -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    src = str(Path(detforge.__file__).parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", CHILD, order, str(weights), threads],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_detforge_first_gets_the_passive_policy_and_keeps_torchs_threads(weights: Path) -> None:
    r = _child("detforge-first", weights)
    assert (r["threads"], r["during"], r["after"], r["policy"]) == (None, [2], 2, "PASSIVE")


def test_torch_first_oversubscribes_by_one_thread_and_restores_the_count(weights: Path) -> None:
    """One thread more than the CPUs: libgomp then spins 100 times instead of 300000."""
    r = _child("torch-first", weights)
    n = r["cpus"] + 1
    assert (r["threads"], r["during"], r["after"], r["policy"]) == (n, [n], 2, None)


def test_an_explicit_thread_count_wins(weights: Path) -> None:
    assert _child("torch-first", weights, "0")["during"] == [2]  # 0: torch's own count
    r = _child("detforge-first", weights, "1")
    assert (r["threads"], r["during"], r["after"]) == (1, [1], 2)
