import pytest

from detforge.data.demo import generate_demo_dataset


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
