"""Test-session set-up shared by every test folder, and where the shared data is.

The shared folder (real datasets, evaluator references) is ``$DETFORGE_SHARED`` when set, else
``../shared`` beside the repository. Tests that need it skip when it is absent (a fresh clone);
where it exists (CI, the benchmark machine), a file or package they need that is missing is a
failure, never a skip, so an exactness check cannot silently stop running.

Fixtures: tiny_data and tiny_args (a tiny synthetic dataset and a fast CPU run on it),
shared_root and shared (the shared folder).
"""

import os
from pathlib import Path

import pytest

# Same as the CLI: idle OpenMP threads sleep, so tests that start DataLoader workers on a 2-core
# machine do not starve (must happen before torch is imported).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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


@pytest.fixture(scope="session")
def shared_root() -> Path | None:
    """The shared folder, or None when it is absent (an unset ``DETFORGE_SHARED`` and no
    ``../shared``). A ``DETFORGE_SHARED`` that is not a folder fails: it was asked for."""
    env = os.environ.get("DETFORGE_SHARED")
    if env:
        if not Path(env).is_dir():
            pytest.fail(f"DETFORGE_SHARED={env} is not a folder")
        return Path(env).resolve()
    beside = Path(__file__).resolve().parents[1].parent / "shared"
    return beside if beside.is_dir() else None


@pytest.fixture(scope="session")
def shared(shared_root: Path | None) -> Path:
    """The shared folder, or skip when it is absent."""
    if shared_root is None:
        pytest.skip("shared data not found: no ../shared beside the repository and "
                    "DETFORGE_SHARED is not set")  # fmt: skip
    return shared_root
