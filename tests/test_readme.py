"""Every code block of the README runs (issue 10.1): what a user copies must work.

Each fenced block is found by its language: ``bash`` blocks run in bash, ``python`` blocks in a
fresh interpreter, ``yaml`` blocks are parsed (a data.yaml example is loaded as one). Blocks
without a language are listings (folder trees), not code. A block in any other language fails
this test, so a new kind of block is handled on purpose. New blocks, such as another section's
example, are picked up without changing this file.

The blocks run as written, in a temporary folder, with three kinds of explicit changes:

- ``SKIPPED``: whole commands that cannot run here, each with its reason;
- ``SUBSTITUTIONS``: placeholder paths and sizes replaced by a tiny generated dataset and tiny
  settings (the user's ``epochs=100`` becomes 1);
- ``ENV``: ``DETFORGE_*`` settings the config loader reads below the command's own arguments
  (a private cache folder, no progress bar, ...), and a tiny demo dataset in that cache.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

SKIPPED = {
    "python3 -m venv .venv": "creates a new environment; the test runs in the one it is in",
    ".venv/bin/pip install -e '.[dev]'": "installs from the package registry; already installed",
    ".venv/bin/python -m pytest": "the test suite itself, of which this test is part",
    ".venv/bin/pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu": (
        "PyTorch's own package index, which this network does not reach"
    ),
    "torchrun --nproc_per_node 4 -m detforge.cli train data=data.yaml batch=16": (
        "four processes; tests/engine/test_distributed.py runs the same path with two"
    ),
    "detforge serve weights=runs/deploy/weights/best.pt": (
        "serves until stopped; tests/serve/test_page.py starts the same command and uses its page"
    ),
    "curl -F file=@a.jpg 'http://127.0.0.1:8000/predict?conf=0.25'": (
        "needs the server above; tests/serve/test_page.py posts to the same endpoint"
    ),
}

# (text in the README, what runs instead), applied in this order
SUBSTITUTIONS = [
    (".venv/bin/detforge", "detforge"),  # the detforge of the environment running the test
    ("/data/pcb/data.yaml", "{data}"),
    ("path: /data/pcb", "path: {dataset}"),  # the data.yaml example's root
    ("pcb/data.yaml", "{data}"),
    ("model=yolo-s", "model=yolo-n"),
    ("epochs=100", "epochs=1"),
    ("epochs=50", "epochs=1"),
    ("imgsz=640", "imgsz=64"),
    ("imgsz=320,640", "imgsz=64,96"),
    ("tune.imgsz=320", "tune.imgsz=64"),
    ("batch=16", "batch=8"),
    ("k=5", "k=2"),  # two folds of one epoch each
    ("gt=instances_val.json", "gt=runs/train/val_gt.json"),
    ("pred=predictions.json", "pred=runs/train/val_predictions.json"),
]

ENV = {
    "DETFORGE_DATA__CACHE_DIR": "{cache}",
    "DETFORGE_TRAIN__PROGRESS": "false",
    "DETFORGE_WORKERS": "0",
    "DETFORGE_AMP": "off",
    "DETFORGE_EVAL__REPORT": "false",
    # the demo (``detforge train`` with no data) at tiny settings, on the tiny demo in {cache}
    "DETFORGE_EPOCHS": "1",
    "DETFORGE_IMGSZ": "64",
    "DETFORGE_BATCH": "8",
}

FENCE = re.compile(r"^```([a-z]*)\n(.*?)^```\s*$", re.S | re.M)


def readme_blocks() -> list[tuple[str, str, int]]:
    """(language, text, line number) of every fenced block."""
    text = README.read_text()
    return [(m[1], m[2], text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]


def _block_id(block: tuple[str, str, int]) -> str:
    return f"{block[0] or 'listing'}-line{block[2]}"


BLOCKS = readme_blocks()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> dict[str, Path]:
    """A folder to run in, a tiny dataset, the tiny demo in a private cache, and the images
    and video the examples name (a.jpg, b.jpg, shots/*.jpg, clip.mp4)."""
    from detforge.data.demo import demo_dataset_dir, generate_demo_dataset

    base = tmp_path_factory.mktemp("readme")
    data = generate_demo_dataset(base / "data", num_train=16, num_val=8, imgsz=64, seed=1)
    cache = base / "cache"
    generate_demo_dataset(demo_dataset_dir(cache), num_train=16, num_val=8, imgsz=64, seed=1)
    dataset = base / "pcb"  # the data.yaml example's layout, for its yaml block
    for split in ("train", "val", "test"):
        (dataset / "images" / split).mkdir(parents=True)
    run = base / "run"
    (run / "shots").mkdir(parents=True)
    images = sorted((data.parent / "images" / "val").glob("*.jpg"))
    for i, name in enumerate(["a.jpg", "b.jpg", "shots/0.jpg", "shots/1.jpg"]):
        shutil.copy(images[i], run / name)
    video = cv2.VideoWriter(str(run / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5, (64, 64))
    for image in images:
        video.write(cv2.resize(cv2.imread(str(image)), (64, 64)))
    video.release()
    return {"run": run, "data": data, "cache": cache, "dataset": dataset}


def _substitute(text: str, paths: dict[str, Path]) -> str:
    for old, new in SUBSTITUTIONS:
        text = text.replace(old, new.format(**{k: str(v) for k, v in paths.items()}))
    return text


def _without_skipped(script: str) -> str:
    """Drop the SKIPPED commands from ``a && b && c`` chains (whole commands only)."""
    lines = []
    for line in script.splitlines():
        code = line.split("  #", 1)[0].strip()
        parts = [p.strip() for p in code.split("&&")] if code else []
        kept = [p for p in parts if p not in SKIPPED]
        if kept:
            lines.append(" && ".join(kept))
    return "\n".join(lines)


def _env(paths: dict[str, Path]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DETFORGE_")}
    env.update({k: v.format(cache=paths["cache"]) for k, v in ENV.items()})
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    src = ROOT / "src"
    env.setdefault("PYTHONPATH", str(src))
    return env


def _run(cmd: list[str], paths: dict[str, Path]) -> str:
    proc = subprocess.run(
        cmd, cwd=paths["run"], env=_env(paths), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def test_readme_has_only_known_kinds_of_blocks():
    kinds = {lang for lang, _, _ in BLOCKS}
    assert kinds <= {"bash", "python", "yaml", ""}, kinds
    assert {"bash", "python", "yaml"} <= kinds


def test_every_skipped_command_is_in_the_readme():
    """The skip list names real commands; a stale entry would hide nothing and mislead."""
    text = README.read_text()
    for cmd in SKIPPED:
        assert cmd in text, cmd


@pytest.mark.parametrize("block", [b for b in BLOCKS if b[0] == "bash"], ids=_block_id)
def test_bash_block_runs(block, workdir):
    script = _substitute(_without_skipped(block[1]), workdir)
    if not script:
        pytest.skip("every command of this block is in SKIPPED: " + block[1].strip())
    out = _run(["bash", "-e", "-c", script], workdir)
    if "detforge train" in script:
        assert "done: " in out


@pytest.mark.parametrize("block", [b for b in BLOCKS if b[0] == "python"], ids=_block_id)
def test_python_block_runs(block, workdir):
    code = _substitute(block[1], workdir)
    path = workdir["run"] / f"readme_line{block[2]}.py"
    path.write_text(code)
    _run([sys.executable, str(path)], workdir)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b[0] == "yaml"], ids=_block_id)
def test_yaml_block_parses(block, workdir):
    doc = yaml.safe_load(block[1])
    assert isinstance(doc, dict)
    if {"names", "train", "val"} <= set(doc):  # a data.yaml example: load it as one
        from detforge.data.datayaml import load_data_yaml

        path = workdir["run"] / f"readme_line{block[2]}.yaml"
        path.write_text(_substitute(block[1], workdir))
        names = doc["names"] if isinstance(doc["names"], list) else list(doc["names"].values())
        assert load_data_yaml(path).names == names
