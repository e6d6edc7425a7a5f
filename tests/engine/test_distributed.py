"""Two processes under torchrun (Gloo on CPU): one run folder, half the steps each."""

import csv
import os
import subprocess
import sys

import pytest

from detforge.engine.checkpoint import load_checkpoint


@pytest.mark.slow
def test_torchrun_two_processes(tiny_args, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DETFORGE_")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "detforge.cli", "train", *tiny_args, "epochs=2", "name=ddp",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["ddp"]  # only the main process creates the run folder
    run = tmp_path / "runs" / "ddp"
    rows = list(csv.DictReader((run / "results.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    # 16 images, batch 4 per process, 2 processes: 2 optimizer steps per epoch
    assert load_checkpoint(run / "weights" / "last.pt")["train"]["step"] == 4
    assert proc.stdout.count("done:") == 1
