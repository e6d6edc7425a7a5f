"""Test-session set-up and fixtures shared by every test folder (tiny_data, tiny_args)."""

import os

# Same as the CLI: idle OpenMP threads sleep, so tests that start DataLoader workers on a 2-core
# machine do not starve (must happen before torch is imported).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402  (after the environment line above)

from detforge.data.demo import generate_demo_dataset  # noqa: E402


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A 16/8-image synthetic YOLO dataset at 64 px (generated, deterministic)."""
    root = tmp_path_factory.mktemp("tiny")
    return generate_demo_dataset(root, num_train=16, num_val=8, imgsz=64, seed=1)


@pytest.fixture
def tiny_args(tiny_data, tmp_path):
    """key=value arguments for a fast CPU run on ``tiny_data`` into ``tmp_path``."""
    return [
        f"data={tiny_data}",
        "imgsz=64",
        "batch=4",
        "epochs=2",
        "workers=0",
        f"project={tmp_path / 'runs'}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "train.progress=false",
        "train.deterministic=true",
        "amp=off",
        "eval.report=false",
    ]
